-- 0012: a delisted product whose objects the retention job removed (objects_purged_at, 0011)
-- is downloaded again when a collection lists it once more.
--
-- The retention job (collage host) records only what it deleted: objects_purged_at and the
-- collage URL, its own columns. It does not move image_status itself -- the collage role may
-- make only its own stage's transitions (0009) -- so the reset happens here, when collect
-- (the apify role, whose transitions include any image state -> 'pending') clears
-- delisted_at. As in 0002 the rule lives in the database, so no writer can forget it.

CREATE FUNCTION raw_products_relist_purged() RETURNS trigger AS $$
BEGIN
    IF OLD.delisted_at IS NOT NULL AND NEW.delisted_at IS NULL
       AND NEW.objects_purged_at IS NOT NULL THEN
        NEW.image_status := 'pending';
        NEW.image_urls := NULL;
        NEW.collage_url := NULL;
        NEW.objects_purged_at := NULL;
        NEW.download_owner := NULL;
        NEW.download_lease_until := NULL;
        NEW.download_attempts := 0;
        NEW.download_next_at := NULL;
        NEW.collage_owner := NULL;
        NEW.collage_lease_until := NULL;
        NEW.collage_attempts := 0;
        NEW.collage_next_at := NULL;
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER trg_raw_products_relist_purged
    BEFORE UPDATE OF delisted_at ON raw_products
    FOR EACH ROW EXECUTE FUNCTION raw_products_relist_purged();
