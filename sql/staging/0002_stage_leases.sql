-- 0002: crash-safe claims, delisting and Ximilar record ids.
--
-- Each stage that leases products has its own lease columns, so the collage builder and the
-- Ximilar sync can hold the same row at once, and column-level grants give each host's role
-- exactly its own lease:
--   {stage}_owner       who holds the lease (NULL: nobody)
--   {stage}_lease_until when the lease lapses; a crashed worker's rows come back after it
--   {stage}_attempts    tries since the last success (capped by MAX_RETRIES)
--   {stage}_next_at     not before this time (spacing between attempts)

ALTER TABLE raw_products
    ADD COLUMN download_owner TEXT,
    ADD COLUMN download_lease_until TIMESTAMPTZ,
    ADD COLUMN download_attempts SMALLINT NOT NULL DEFAULT 0,
    ADD COLUMN download_next_at TIMESTAMPTZ,
    ADD COLUMN collage_owner TEXT,
    ADD COLUMN collage_lease_until TIMESTAMPTZ,
    ADD COLUMN collage_attempts SMALLINT NOT NULL DEFAULT 0,
    ADD COLUMN collage_next_at TIMESTAMPTZ,
    ADD COLUMN ximilar_owner TEXT,
    ADD COLUMN ximilar_lease_until TIMESTAMPTZ,
    ADD COLUMN ximilar_attempts SMALLINT NOT NULL DEFAULT 0,
    ADD COLUMN ximilar_next_at TIMESTAMPTZ,
    ADD COLUMN sync_owner TEXT,
    ADD COLUMN sync_lease_until TIMESTAMPTZ,
    ADD COLUMN sync_attempts SMALLINT NOT NULL DEFAULT 0,
    ADD COLUMN sync_next_at TIMESTAMPTZ,
    -- Set when a complete, successful collection of the brand no longer lists the product.
    ADD COLUMN delisted_at TIMESTAMPTZ,
    -- The Ximilar _id of every record the collection holds for this product (so stale
    -- records can be deleted after the photos change; ximilar_synced_urls keeps the URLs).
    ADD COLUMN ximilar_record_ids JSONB NOT NULL DEFAULT '[]';

-- One small ordered index per queue: a claim reads the first N eligible ids without
-- sorting, whatever the table size.
CREATE INDEX idx_raw_products_queue_download ON raw_products (id)
    WHERE image_status = 'pending' AND delisted_at IS NULL;
CREATE INDEX idx_raw_products_queue_collage ON raw_products (id)
    WHERE image_status = 'uploaded' AND delisted_at IS NULL;
CREATE INDEX idx_raw_products_queue_ximilar ON raw_products (id)
    WHERE ximilar_status IN ('pending', 'partial');
CREATE INDEX idx_raw_products_queue_sync ON raw_products (id)
    WHERE sync_status = 'pending';
CREATE INDEX idx_raw_products_source_active ON raw_products (source)
    WHERE delisted_at IS NULL;

-- Downstream reset lives in the database, so that no writer can forget it and the collect
-- role needs no grant on the other stages' columns (privileges are checked on the columns a
-- statement names, not on those a trigger sets).
--   * photo URLs changed    -> photos, collage and Ximilar state start over (image_status
--                              'pending'); the Ximilar record ids are kept so the stale
--                              records can be deleted;
--   * catalog fields changed, or the product was delisted / came back -> sync_status
--                              'pending', so production gets the new values.
CREATE FUNCTION raw_products_reset_downstream() RETURNS trigger AS $$
BEGIN
    IF NEW.original_image_urls IS DISTINCT FROM OLD.original_image_urls THEN
        NEW.image_status := 'pending';
        NEW.image_urls := NULL;
        NEW.collage_url := NULL;
        NEW.error_message := NULL;
        NEW.ximilar_status := 'pending';
        NEW.ximilar_synced_urls := '[]';
        NEW.download_owner := NULL;
        NEW.download_lease_until := NULL;
        NEW.download_attempts := 0;
        NEW.download_next_at := NULL;
        NEW.collage_owner := NULL;
        NEW.collage_lease_until := NULL;
        NEW.collage_attempts := 0;
        NEW.collage_next_at := NULL;
        NEW.ximilar_owner := NULL;
        NEW.ximilar_lease_until := NULL;
        NEW.ximilar_attempts := 0;
        NEW.ximilar_next_at := NULL;
    END IF;
    IF NEW.original_image_urls IS DISTINCT FROM OLD.original_image_urls
       OR NEW.name IS DISTINCT FROM OLD.name
       OR NEW.description IS DISTINCT FROM OLD.description
       OR NEW.price IS DISTINCT FROM OLD.price
       OR NEW.currency IS DISTINCT FROM OLD.currency
       OR NEW.category IS DISTINCT FROM OLD.category
       OR NEW.colour IS DISTINCT FROM OLD.colour
       OR NEW.sizes IS DISTINCT FROM OLD.sizes
       OR NEW.composition IS DISTINCT FROM OLD.composition
       OR (NEW.delisted_at IS NULL) IS DISTINCT FROM (OLD.delisted_at IS NULL) THEN
        NEW.sync_status := 'pending';
        NEW.sync_owner := NULL;
        NEW.sync_lease_until := NULL;
        NEW.sync_attempts := 0;
        NEW.sync_next_at := NULL;
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER trg_raw_products_reset_downstream
    BEFORE UPDATE OF original_image_urls, name, description, price, currency, category,
                     colour, sizes, composition, delisted_at
    ON raw_products
    FOR EACH ROW EXECUTE FUNCTION raw_products_reset_downstream();
