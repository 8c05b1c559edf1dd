-- 0013: the production sync reopened by another stage's work, under 0007's stage-owned
-- errors and 0009's transition guard (three migrations written side by side).
--
--   * 0008's trigger reopens a synced or skipped row (sync_status -> 'pending') when a
--     stage changes what production shows. A skip is the sync stage's reason (sync_error,
--     0007): reopening clears it, or the queue would still read the row as failed; the
--     shown error_message falls back to another stage's standing reason.
--   * The row is reopened by the trigger on behalf of the role whose write changed it (the
--     downloader's new photos, the collage host's collage, the Ximilar host's records).
--     Those roles have no grant on sync_status, so they can reach these transitions only
--     through the trigger; the guard of 0009 must let them through.

CREATE OR REPLACE FUNCTION raw_products_reopen_sync() RETURNS trigger AS $$
BEGIN
    IF NEW.sync_status IN ('synced', 'skipped')
       AND (NEW.collage_url IS DISTINCT FROM OLD.collage_url
            OR NEW.image_urls IS DISTINCT FROM OLD.image_urls
            OR NEW.ximilar_record_ids IS DISTINCT FROM OLD.ximilar_record_ids
            OR NEW.index_scope IS DISTINCT FROM OLD.index_scope
            OR (NEW.image_status = 'collage_ready'
                AND OLD.image_status IS DISTINCT FROM 'collage_ready')) THEN
        IF NEW.error_message IS NOT DISTINCT FROM NEW.sync_error THEN
            NEW.error_message := coalesce(NEW.download_error, NEW.collage_error,
                                          NEW.ximilar_error);
        END IF;
        NEW.sync_status := 'pending';
        NEW.sync_error := NULL;
        NEW.sync_owner := NULL;
        NEW.sync_lease_until := NULL;
        NEW.sync_attempts := 0;
        NEW.sync_next_at := NULL;
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

INSERT INTO stage_transitions (role, status_column, from_status, to_status) VALUES
    ('downloader', 'sync_status', 'synced', 'pending'),
    ('downloader', 'sync_status', 'skipped', 'pending'),
    ('collage', 'sync_status', 'synced', 'pending'),
    ('collage', 'sync_status', 'skipped', 'pending'),
    ('ximilar', 'sync_status', 'synced', 'pending'),
    ('ximilar', 'sync_status', 'skipped', 'pending')
ON CONFLICT DO NOTHING;
