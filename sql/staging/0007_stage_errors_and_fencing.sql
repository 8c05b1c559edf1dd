-- 0007: each stage owns its errors, claims are fenced, runs can end interrupted/abandoned.
--
-- * {stage}_error: the reason this stage gave up on the row (NULL: not failed here). A
--   stage's failure or success touches only its own column; error_message keeps the
--   latest reason for the document's readers. A collage failure no longer moves
--   image_status to 'error' (the photos are still 'uploaded' and stay in Ximilar's queue):
--   it sets collage_error, which takes the row out of the collage queue.
-- * {stage}_claim: a counter bumped by every claim of the stage. A claim carries the value
--   it was given (its token); complete / fail / extend / release / postpone match it, so a
--   worker whose lease lapsed and was re-claimed -- even by the same owner -- writes nothing.
-- * a partial Ximilar row waits (ximilar_next_at) before it is sent again; a raised target
--   makes it claimable at once, as new photos do (0002).
-- * scraper_logs: 'interrupted' (stopped by SIGTERM/SIGINT) and 'abandoned' (its process
--   died; marked by a later run of the same job on the same host).

ALTER TABLE raw_products
    ADD COLUMN download_error TEXT,
    ADD COLUMN collage_error TEXT,
    ADD COLUMN ximilar_error TEXT,
    ADD COLUMN sync_error TEXT,
    ADD COLUMN download_claim BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN collage_claim BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN ximilar_claim BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN sync_claim BIGINT NOT NULL DEFAULT 0;

-- Existing rows: a stage's failure is told apart as before 0007 (only the failing stage's
-- attempt count is left non-zero: a success resets it).
UPDATE raw_products
   SET image_status = 'uploaded',
       collage_error = coalesce(error_message, 'collage: failed (before migration 0007)')
 WHERE image_status = 'error' AND collage_attempts > 0 AND download_attempts = 0
   AND image_urls IS NOT NULL AND jsonb_array_length(image_urls) > 0;
UPDATE raw_products
   SET download_error = coalesce(error_message, 'download: failed (before migration 0007)')
 WHERE image_status = 'error';
UPDATE raw_products
   SET ximilar_error = coalesce(error_message, 'ximilar: failed (before migration 0007)')
 WHERE ximilar_status = 'error';
UPDATE raw_products
   SET sync_error = coalesce(error_message, 'sync: failed (before migration 0007)')
 WHERE sync_status = 'error';
UPDATE raw_products SET sync_error = error_message
 WHERE sync_status = 'skipped' AND error_message IS NOT NULL;

-- 0002's downstream reset, now also clearing the stages' own reasons.
CREATE OR REPLACE FUNCTION raw_products_reset_downstream() RETURNS trigger AS $$
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
        NEW.download_error := NULL;
        NEW.collage_owner := NULL;
        NEW.collage_lease_until := NULL;
        NEW.collage_attempts := 0;
        NEW.collage_next_at := NULL;
        NEW.collage_error := NULL;
        NEW.ximilar_owner := NULL;
        NEW.ximilar_lease_until := NULL;
        NEW.ximilar_attempts := 0;
        NEW.ximilar_next_at := NULL;
        NEW.ximilar_error := NULL;
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
        NEW.sync_error := NULL;
        NEW.updated_at := now();
    END IF;
    -- A delisted product's records must go: a parked or given-up Ximilar row is retried.
    IF NEW.delisted_at IS NOT NULL AND OLD.delisted_at IS NULL THEN
        NEW.ximilar_next_at := NULL;
        NEW.ximilar_attempts := 0;
        NEW.ximilar_error := NULL;
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

-- 0005's raised target, now also waking a partial row that waits for its next try.
CREATE OR REPLACE FUNCTION raw_products_ximilar_target_raised() RETURNS trigger AS $$
BEGIN
    IF NEW.ximilar_target_count > OLD.ximilar_target_count
       AND NEW.ximilar_status IN ('synced', 'partial') THEN
        NEW.ximilar_status := 'partial';
        NEW.ximilar_next_at := NULL;
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

-- Each host's role writes its own stage's reason and claim counter (as 0003).
GRANT UPDATE (download_error, download_claim) ON raw_products TO downloader;
GRANT UPDATE (collage_error, collage_claim) ON raw_products TO collage;
GRANT UPDATE (ximilar_error, ximilar_claim) ON raw_products TO ximilar;
GRANT UPDATE (sync_error, sync_claim) ON raw_products TO scraper;

ALTER TABLE scraper_logs DROP CONSTRAINT scraper_logs_status_check;
ALTER TABLE scraper_logs
    ADD CONSTRAINT scraper_logs_status_check
        CHECK (status IN ('running', 'success', 'partial', 'failed', 'interrupted', 'abandoned'));

-- Rows nobody holds that have used attempts (failed, postponed, released): a claim looks
-- among them for rows whose attempts ran out, without reading the queue.
CREATE INDEX idx_raw_products_idle_download ON raw_products (download_attempts)
    WHERE download_owner IS NULL AND download_attempts > 0;
CREATE INDEX idx_raw_products_idle_collage ON raw_products (collage_attempts)
    WHERE collage_owner IS NULL AND collage_attempts > 0;
CREATE INDEX idx_raw_products_idle_ximilar ON raw_products (ximilar_attempts)
    WHERE ximilar_owner IS NULL AND ximilar_attempts > 0;
CREATE INDEX idx_raw_products_idle_sync ON raw_products (sync_attempts)
    WHERE sync_owner IS NULL AND sync_attempts > 0;

-- A run's start looks for its own host's older 'running' rows.
CREATE INDEX idx_scraper_logs_running ON scraper_logs (scraper_name, started_at)
    WHERE status = 'running';
