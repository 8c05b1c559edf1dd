-- 0004: the status columns hold only the states of the domain's status machines
-- (undecat.domain.status), and the Ximilar bookkeeping stays a JSON list. A writer with a
-- typo is refused by the database instead of parking a row where no stage will find it.

ALTER TABLE raw_products
    ADD CONSTRAINT raw_products_image_status_check
        CHECK (image_status IN ('pending', 'uploaded', 'collage_ready', 'error')),
    ADD CONSTRAINT raw_products_ximilar_status_check
        CHECK (ximilar_status IN ('pending', 'partial', 'synced', 'error')),
    ADD CONSTRAINT raw_products_sync_status_check
        CHECK (sync_status IN ('pending', 'synced', 'skipped', 'error')),
    ADD CONSTRAINT raw_products_index_scope_check
        CHECK (index_scope IN ('pilot', 'pgvector', 'off')),
    ADD CONSTRAINT raw_products_ximilar_synced_urls_check
        CHECK (jsonb_typeof(ximilar_synced_urls) = 'array'),
    ADD CONSTRAINT raw_products_ximilar_record_ids_check
        CHECK (jsonb_typeof(ximilar_record_ids) = 'array'),
    ADD CONSTRAINT raw_products_attempts_check
        CHECK (download_attempts >= 0 AND collage_attempts >= 0
               AND ximilar_attempts >= 0 AND sync_attempts >= 0);

ALTER TABLE scraper_logs
    ADD CONSTRAINT scraper_logs_status_check
        CHECK (status IN ('running', 'success', 'partial', 'failed'));
