-- undecat: no-transaction
-- 0011: what the retention job (collage host, `undecat-collage retention`) needs.
--
-- Expand-only: grants and a new index, nothing dropped or renamed, so the previous release
-- keeps running against this schema. The index is built CONCURRENTLY (no write lock on
-- the tables), which cannot run inside a transaction: hence the first line (see
-- undecat.adapters.postgres.migrate). Every statement is re-runnable.
--   * prune_scraper_logs(days): deletes finished run logs older than `days` (at least 7).
--     A SECURITY DEFINER function rather than DELETE on the table: the collage role can
--     prune old logs and nothing else (no role has DELETE, see 0003);
--   * objects_purged_at: when the retention job deleted a delisted product's photos and
--     collage (by key); the collage role may set it, image_status and collage_url (its own
--     columns already), never image_urls (the downloader's).
-- The pilot (`undecat pilot`) is set by the operator as the schema owner: no role gets
-- index_scope.

CREATE OR REPLACE FUNCTION prune_scraper_logs(days INTEGER) RETURNS BIGINT
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    removed BIGINT;
BEGIN
    IF days IS NULL OR days < 7 THEN
        RAISE EXCEPTION 'prune_scraper_logs: keep at least 7 days, got %', days;
    END IF;
    DELETE FROM scraper_logs
        WHERE started_at < now() - make_interval(days => days) AND status <> 'running';
    GET DIAGNOSTICS removed = ROW_COUNT;
    RETURN removed;
END;
$$;
REVOKE ALL ON FUNCTION prune_scraper_logs(INTEGER) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION prune_scraper_logs(INTEGER) TO collage;
ALTER TABLE raw_products ADD COLUMN IF NOT EXISTS objects_purged_at TIMESTAMPTZ;
GRANT UPDATE (objects_purged_at) ON raw_products TO collage;

-- Retention finds products delisted long ago that still hold objects.
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_raw_products_delisted_objects
    ON raw_products (delisted_at)
    WHERE delisted_at IS NOT NULL;
