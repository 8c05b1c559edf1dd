-- 0010: Ximilar record ids are written down before they are sent.
--
-- The sync inserts records, then writes the confirmed ids to ximilar_record_ids. A worker
-- that dies between the two (or an insert whose answer was lost) leaves records in the
-- collection that no row knows of; when the product's photos then change, the 0002 reset
-- starts over and those records stay in the collection for ever (and are paid for).
-- So the sync first adds the ids it is about to send to ximilar_pending_ids (only while it
-- holds the row's Ximilar lease), and clears them once the product's outcome is written.
-- When the photo URLs change, or the product is delisted, whatever is still pending joins
-- ximilar_record_ids: those records match no current photo, so the next sync deletes them
-- as stale (deleting an id the collection never stored is harmless).

ALTER TABLE raw_products
    ADD COLUMN ximilar_pending_ids JSONB NOT NULL DEFAULT '[]',
    ADD CONSTRAINT raw_products_ximilar_pending_ids_check
        CHECK (jsonb_typeof(ximilar_pending_ids) = 'array');

GRANT UPDATE (ximilar_pending_ids) ON raw_products TO ximilar;

CREATE FUNCTION raw_products_ximilar_pending_to_known() RETURNS trigger AS $$
BEGIN
    IF NEW.ximilar_pending_ids <> '[]'::jsonb
       AND (NEW.original_image_urls IS DISTINCT FROM OLD.original_image_urls
            OR (NEW.delisted_at IS NOT NULL AND OLD.delisted_at IS NULL)) THEN
        NEW.ximilar_record_ids := NEW.ximilar_record_ids || COALESCE(
            (SELECT jsonb_agg(pending.id)
               FROM jsonb_array_elements(NEW.ximilar_pending_ids) AS pending(id)
              WHERE NOT NEW.ximilar_record_ids @> jsonb_build_array(pending.id)),
            '[]'::jsonb);
        NEW.ximilar_pending_ids := '[]';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

-- Named to fire after trg_raw_products_reset_downstream (BEFORE triggers run by name), so
-- it sees the record ids that reset keeps.
CREATE TRIGGER trg_raw_products_ximilar_pending_to_known
    BEFORE UPDATE OF original_image_urls, delisted_at ON raw_products
    FOR EACH ROW EXECUTE FUNCTION raw_products_ximilar_pending_to_known();
