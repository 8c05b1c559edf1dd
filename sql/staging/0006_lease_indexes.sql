-- 0006: find lapsed leases without reading the queue. Before each claim, rows whose
-- worker died on the last allowed attempt are moved to 'error'; that lookup goes by the
-- stage's lease expiry, and only leased rows are in these indexes.

CREATE INDEX idx_raw_products_lease_download ON raw_products (download_lease_until)
    WHERE download_lease_until IS NOT NULL;
CREATE INDEX idx_raw_products_lease_collage ON raw_products (collage_lease_until)
    WHERE collage_lease_until IS NOT NULL;
CREATE INDEX idx_raw_products_lease_ximilar ON raw_products (ximilar_lease_until)
    WHERE ximilar_lease_until IS NOT NULL;
CREATE INDEX idx_raw_products_lease_sync ON raw_products (sync_lease_until)
    WHERE sync_lease_until IS NOT NULL;
