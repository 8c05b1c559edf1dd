-- The index of the private user media bucket (unde-user-media), which allows no LIST.
--
-- One row per stored object. A row is written (complete = false) before its object is
-- uploaded and marked complete after both files of the item are in, so a crash at any point
-- leaves a row that erasing the user still finds. `attempt` changes on every store of the
-- item: a writer (finishing a store, erasing a user) only touches rows of the attempt it saw.
-- This file depends on nothing else of the production schema.

CREATE SCHEMA IF NOT EXISTS user_media;

CREATE TABLE user_media.objects (
    key         TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL CHECK (user_id ~ '^[A-Za-z0-9_-]{1,64}$'),
    kind        TEXT NOT NULL CHECK (kind IN ('photos', 'tryon', 'saved')),
    item_id     TEXT NOT NULL CHECK (item_id ~ '^[A-Za-z0-9_-]{1,64}$'),
    bytes       BIGINT NOT NULL CHECK (bytes >= 0),
    complete    BOOLEAN NOT NULL DEFAULT false,
    attempt     UUID NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- The key is the layout of the source document, nothing else.
    CONSTRAINT objects_key_layout CHECK (
        key IN (
            user_id || '/' || kind || '/' || item_id || '/thumb.jpg',
            user_id || '/' || kind || '/' || item_id || '/'
                || CASE kind WHEN 'tryon' THEN 'result.jpg' ELSE 'original.jpg' END
        )
    )
);

-- Erasing a user and summing their usage read by user; a store reads by item.
CREATE INDEX objects_user_item ON user_media.objects (user_id, kind, item_id);

COMMENT ON TABLE user_media.objects IS
    'Every object of the unde-user-media bucket (the bucket refuses LIST); see docs/user-media.md';
