-- 0003: the source document's database users as least-privilege roles.
--
-- Roles are created NOLOGIN; a deployment gives each its password once:
--     ALTER ROLE downloader WITH LOGIN PASSWORD '...';
-- (docs/deploy.md). Roles are cluster-wide, so creating them tolerates their existing.
-- No role gets DELETE, TRUNCATE or any DDL; every role may write its own run logs.

DO $$
DECLARE
    r TEXT;
BEGIN
    FOREACH r IN ARRAY ARRAY['apify', 'downloader', 'ximilar', 'scraper', 'collage'] LOOP
        BEGIN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- already there (another database of this cluster, or a concurrent run)
        END;
    END LOOP;
END;
$$;

REVOKE CREATE ON SCHEMA public FROM PUBLIC;
REVOKE ALL ON raw_products, raw_availability, raw_stores, scraper_logs FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO apify, downloader, ximilar, scraper, collage;

-- Every runner records its runs.
GRANT SELECT, INSERT ON scraper_logs TO apify, downloader, ximilar, scraper, collage;
GRANT UPDATE (status, run_id, records_fetched, records_new, records_updated, records_errors,
              completed_at, duration_seconds, error_message, metadata)
    ON scraper_logs TO apify, downloader, ximilar, scraper, collage;
GRANT USAGE ON SEQUENCE scraper_logs_id_seq TO apify, downloader, ximilar, scraper, collage;

-- apify: collects the catalog. Writes catalog fields only; the downstream reset is done by
-- the trigger of 0002, so it needs no grant on image, Ximilar or sync columns.
GRANT SELECT, INSERT ON raw_products TO apify;
GRANT UPDATE (name, description, price, currency, category, colour, sizes, composition,
              original_image_urls, raw_data, scraped_at, updated_at, delisted_at)
    ON raw_products TO apify;
GRANT USAGE ON SEQUENCE raw_products_id_seq TO apify;

-- downloader: photos into the object store.
GRANT SELECT ON raw_products TO downloader;
GRANT UPDATE (image_status, image_urls, error_message, updated_at,
              download_owner, download_lease_until, download_attempts, download_next_at)
    ON raw_products TO downloader;

-- collage: one collage per product.
GRANT SELECT ON raw_products TO collage;
GRANT UPDATE (image_status, collage_url, error_message, updated_at,
              collage_owner, collage_lease_until, collage_attempts, collage_next_at)
    ON raw_products TO collage;

-- ximilar: the visual-search index.
GRANT SELECT ON raw_products TO ximilar;
GRANT UPDATE (ximilar_status, ximilar_synced_urls, ximilar_synced_at, ximilar_record_ids,
              error_message, updated_at,
              ximilar_owner, ximilar_lease_until, ximilar_attempts, ximilar_next_at)
    ON raw_products TO ximilar;

-- scraper: availability, stores, and the production sync's bookkeeping.
GRANT SELECT ON raw_products, raw_availability, raw_stores TO scraper;
GRANT INSERT, UPDATE ON raw_availability, raw_stores TO scraper;
GRANT USAGE ON SEQUENCE raw_availability_id_seq, raw_stores_id_seq TO scraper;
GRANT UPDATE (sync_status, synced_at, error_message, updated_at,
              sync_owner, sync_lease_until, sync_attempts, sync_next_at)
    ON raw_products TO scraper;
