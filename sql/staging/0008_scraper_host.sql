-- 0008: the scraper host (availability, stores, production sync).
--
-- * availability_retention deletes old raw_availability rows: the scraper role may DELETE
--   there (and only there).
-- * Production holds a product's collage, photos and Ximilar records too, so when one of
--   them changes on a row already synced (or skipped), the row goes back to
--   sync_status='pending' and the next sync_to_production copies it. A skipped product whose
--   collage becomes ready (a retried download) is reopened the same way. As in 0002 the rule
--   lives in the database, so that the downloader, collage and Ximilar hosts need no grant on
--   the sync columns and cannot forget it.

GRANT DELETE ON raw_availability TO scraper;

CREATE FUNCTION raw_products_reopen_sync() RETURNS trigger AS $$
BEGIN
    IF NEW.sync_status IN ('synced', 'skipped')
       AND (NEW.collage_url IS DISTINCT FROM OLD.collage_url
            OR NEW.image_urls IS DISTINCT FROM OLD.image_urls
            OR NEW.ximilar_record_ids IS DISTINCT FROM OLD.ximilar_record_ids
            OR NEW.index_scope IS DISTINCT FROM OLD.index_scope
            OR (NEW.image_status = 'collage_ready'
                AND OLD.image_status IS DISTINCT FROM 'collage_ready')) THEN
        NEW.sync_status := 'pending';
        NEW.sync_owner := NULL;
        NEW.sync_lease_until := NULL;
        NEW.sync_attempts := 0;
        NEW.sync_next_at := NULL;
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER trg_raw_products_reopen_sync
    BEFORE UPDATE OF image_status, collage_url, image_urls, ximilar_record_ids, index_scope
    ON raw_products
    FOR EACH ROW EXECUTE FUNCTION raw_products_reopen_sync();

-- When each product's availability was last polled (any store): availability_poll polls the
-- least recently polled first and reports coverage from it, without reading the history.
CREATE TABLE availability_poll_state (
    brand VARCHAR(50) NOT NULL,
    product_id VARCHAR(100) NOT NULL,
    polled_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (brand, product_id)
);
REVOKE ALL ON availability_poll_state FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE ON availability_poll_state TO scraper;
