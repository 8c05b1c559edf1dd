-- 0011: what the retention job (collage host, `runners/collage.py retention`) needs.
--
-- Expand-only: grants, nothing dropped or renamed, so the previous release keeps running.
--   * DELETE on scraper_logs: rows older than RUN_LOG_RETENTION_DAYS are removed;
--   * UPDATE (image_urls) on raw_products: a product delisted for DELISTED_RETENTION_DAYS
--     loses its photos (deleted by key) and the row forgets their URLs.
-- The pilot (`undecat pilot`) is set by the operator as the schema owner: no role gets
-- index_scope.

GRANT DELETE ON scraper_logs TO collage;
GRANT UPDATE (image_urls) ON raw_products TO collage;
