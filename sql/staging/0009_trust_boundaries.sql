-- 0009: trust boundaries between hosts, enforced by the database (issue 16 items 2 and 3).
--
-- Column grants (0003) decide WHICH columns each host's role may write; this migration adds
-- WHAT it may write there:
--   * collect (apify) creates rows only as new work: every status 'pending', index_scope at
--     its default, no stored photos, collage or Ximilar state, and names only catalog
--     columns in its INSERT (column-level INSERT grant);
--   * each role moves a status only along its own stage's transitions, listed in ONE table,
--     stage_transitions (role, status column, from, to); a write outside it is refused with
--     SQLSTATE 42501 (insufficient_privilege);
--   * scraper_logs rows carry their writer (db_role DEFAULT current_user) and row-level
--     security lets a role see and update only its own rows; the reporting role `reporter`
--     (undecat status / health) reads everything and writes nothing.
-- The table owner (migrations, operators) is not restricted: it bypasses row-level security
-- and its own writes are not checked against stage_transitions.
--
-- Extending (a later migration): a new status value or stage transition is one INSERT INTO
-- stage_transitions; a new status column is one more line in raw_products_stage_guard()
-- and in the WHEN clause of trg_raw_products_stage_guard_update below; a new writable
-- column is one GRANT.

-- 1. The reporting role: reads everything, writes nothing.
DO $$
BEGIN
    CREATE ROLE reporter NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;  -- already there (another database of this cluster)
END;
$$;
GRANT USAGE ON SCHEMA public TO reporter;
GRANT SELECT ON raw_products, raw_availability, raw_stores, scraper_logs TO reporter;

-- 2. Collect names only catalog columns when it creates a row (0003 gave it every column).
--    image_status stays in the list because the upsert names it; the guard below pins it
--    to 'pending'.
REVOKE INSERT ON raw_products FROM apify;
GRANT INSERT (source, external_id, brand, name, description, price, currency, category,
              colour, sizes, composition, original_image_urls, raw_data, scraped_at,
              image_status)
    ON raw_products TO apify;

-- 3. The transitions each role may make: the one place to read or extend them.
CREATE TABLE stage_transitions (
    role TEXT NOT NULL,
    status_column TEXT NOT NULL,
    from_status TEXT NOT NULL,
    to_status TEXT NOT NULL,
    PRIMARY KEY (role, status_column, from_status, to_status),
    CHECK (from_status <> to_status)
);
REVOKE ALL ON stage_transitions FROM PUBLIC;
GRANT SELECT ON stage_transitions TO apify, downloader, collage, ximilar, scraper, reporter;

INSERT INTO stage_transitions (role, status_column, from_status, to_status) VALUES
    -- collect: only the downstream reset of 0002 (photos or catalog fields changed).
    ('apify', 'image_status', 'uploaded', 'pending'),
    ('apify', 'image_status', 'collage_ready', 'pending'),
    ('apify', 'image_status', 'error', 'pending'),
    ('apify', 'ximilar_status', 'partial', 'pending'),
    ('apify', 'ximilar_status', 'synced', 'pending'),
    ('apify', 'ximilar_status', 'error', 'pending'),
    ('apify', 'sync_status', 'synced', 'pending'),
    ('apify', 'sync_status', 'skipped', 'pending'),
    ('apify', 'sync_status', 'error', 'pending'),
    -- downloader: pending -> uploaded | error; retry_failed: error -> pending.
    ('downloader', 'image_status', 'pending', 'uploaded'),
    ('downloader', 'image_status', 'pending', 'error'),
    ('downloader', 'image_status', 'error', 'pending'),
    -- collage: uploaded -> collage_ready | error; retry_failed: error -> uploaded.
    ('collage', 'image_status', 'uploaded', 'collage_ready'),
    ('collage', 'image_status', 'uploaded', 'error'),
    ('collage', 'image_status', 'error', 'uploaded'),
    -- ximilar: progress, failure, retry, and a delisted product's records removed.
    ('ximilar', 'ximilar_status', 'pending', 'partial'),
    ('ximilar', 'ximilar_status', 'pending', 'synced'),
    ('ximilar', 'ximilar_status', 'pending', 'error'),
    ('ximilar', 'ximilar_status', 'partial', 'synced'),
    ('ximilar', 'ximilar_status', 'partial', 'error'),
    ('ximilar', 'ximilar_status', 'partial', 'pending'),
    ('ximilar', 'ximilar_status', 'synced', 'pending'),
    ('ximilar', 'ximilar_status', 'synced', 'error'),
    ('ximilar', 'ximilar_status', 'error', 'pending'),
    -- scraper (sync_to_production): pending -> synced | skipped | error; retry: error -> pending.
    ('scraper', 'sync_status', 'pending', 'synced'),
    ('scraper', 'sync_status', 'pending', 'skipped'),
    ('scraper', 'sync_status', 'pending', 'error'),
    ('scraper', 'sync_status', 'error', 'pending');

CREATE FUNCTION stage_transition_check(who TEXT, status_column TEXT, before TEXT, after TEXT)
RETURNS void AS $$
BEGIN
    IF before IS DISTINCT FROM after AND NOT EXISTS (
        SELECT 1 FROM stage_transitions t
        WHERE t.role = who AND t.status_column = stage_transition_check.status_column
          AND t.from_status = coalesce(before, 'pending') AND t.to_status = after
    ) THEN
        RAISE EXCEPTION 'role % may not change raw_products.% from % to %',
                who, status_column, coalesce(before, 'NULL'), coalesce(after, 'NULL')
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'the transitions each role may make are listed in stage_transitions';
    END IF;
END;
$$ LANGUAGE plpgsql STABLE;

-- Runs AFTER the row is final (after the reset triggers of 0002 and 0005 have set NEW), for
-- the roles listed in stage_transitions only.
CREATE FUNCTION raw_products_stage_guard() RETURNS trigger AS $$
DECLARE
    who TEXT := current_user;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM stage_transitions WHERE role = who) THEN
        RETURN NULL;  -- the owner, an operator: not a host role
    END IF;
    IF TG_OP = 'INSERT' THEN
        IF NEW.image_status IS DISTINCT FROM 'pending'
           OR NEW.ximilar_status IS DISTINCT FROM 'pending'
           OR NEW.sync_status IS DISTINCT FROM 'pending'
           OR NEW.index_scope IS DISTINCT FROM 'off'  -- the column's default (0001)
           OR NEW.image_urls IS NOT NULL
           OR NEW.collage_url IS NOT NULL
           OR NEW.ximilar_synced_urls IS DISTINCT FROM '[]'::jsonb
           OR NEW.ximilar_record_ids IS DISTINCT FROM '[]'::jsonb
           OR NEW.delisted_at IS NOT NULL THEN
            RAISE EXCEPTION 'role % may only create new work: every status pending, '
                            'index_scope at its default, no stored photos, collage or Ximilar state',
                    who
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        RETURN NULL;
    END IF;
    -- Every status column of raw_products, one line each.
    PERFORM stage_transition_check(who, 'image_status', OLD.image_status, NEW.image_status);
    PERFORM stage_transition_check(who, 'ximilar_status', OLD.ximilar_status, NEW.ximilar_status);
    PERFORM stage_transition_check(who, 'sync_status', OLD.sync_status, NEW.sync_status);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

-- The WHEN clauses keep the common case free: a row created as new work, or an update that
-- moves no status (a lease, a catalog field), queues no trigger call at all. They repeat
-- the checks of the function, which decides whether the writer is held to them.
CREATE TRIGGER trg_raw_products_stage_guard_insert
    AFTER INSERT ON raw_products
    FOR EACH ROW
    WHEN (NEW.image_status IS DISTINCT FROM 'pending'
          OR NEW.ximilar_status IS DISTINCT FROM 'pending'
          OR NEW.sync_status IS DISTINCT FROM 'pending'
          OR NEW.index_scope IS DISTINCT FROM 'off'
          OR NEW.image_urls IS NOT NULL
          OR NEW.collage_url IS NOT NULL
          OR NEW.ximilar_synced_urls IS DISTINCT FROM '[]'::jsonb
          OR NEW.ximilar_record_ids IS DISTINCT FROM '[]'::jsonb
          OR NEW.delisted_at IS NOT NULL)
    EXECUTE FUNCTION raw_products_stage_guard();
CREATE TRIGGER trg_raw_products_stage_guard_update
    AFTER UPDATE ON raw_products
    FOR EACH ROW
    WHEN (OLD.image_status IS DISTINCT FROM NEW.image_status
          OR OLD.ximilar_status IS DISTINCT FROM NEW.ximilar_status
          OR OLD.sync_status IS DISTINCT FROM NEW.sync_status)
    EXECUTE FUNCTION raw_products_stage_guard();

-- 4. Run logs belong to their writer.
ALTER TABLE scraper_logs ADD COLUMN db_role TEXT NOT NULL DEFAULT current_user;
-- Rows written before this migration: their writer from the job name (the rest stay the
-- owner's, read-only to the hosts).
UPDATE scraper_logs SET db_role = CASE
    WHEN scraper_name LIKE 'apify\_%' THEN 'apify'
    WHEN scraper_name = 'download_pending' OR scraper_name LIKE 'photo\_downloader.%'
        THEN 'downloader'
    WHEN scraper_name = 'process_new' OR scraper_name LIKE 'collage.%' THEN 'collage'
    WHEN scraper_name IN ('ximilar_sync', 'ximilar_retry') THEN 'ximilar'
    WHEN scraper_name IN ('availability_poll', 'sync_to_production', 'stores_refresh',
                          'availability_retention') THEN 'scraper'
    ELSE db_role END;
CREATE INDEX idx_scraper_logs_db_role ON scraper_logs (db_role, started_at DESC);

ALTER TABLE scraper_logs ENABLE ROW LEVEL SECURITY;
CREATE POLICY scraper_logs_own_rows_read ON scraper_logs FOR SELECT
    USING (db_role = current_user);
CREATE POLICY scraper_logs_own_rows_insert ON scraper_logs FOR INSERT
    WITH CHECK (db_role = current_user);
CREATE POLICY scraper_logs_own_rows_update ON scraper_logs FOR UPDATE
    USING (db_role = current_user) WITH CHECK (db_role = current_user);
CREATE POLICY scraper_logs_reporter_reads_all ON scraper_logs FOR SELECT TO reporter
    USING (true);
