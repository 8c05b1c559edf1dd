-- 0005: progressive ingestion. Raising a product's ximilar_target_count asks for more of
-- its photos in the Ximilar collection; a 'synced' row is not in the Ximilar queue, so the
-- raise moves it to 'partial' (the domain's TARGET_RAISED transition, synced -> partial),
-- and the next ximilar_sync sends only the extra photos. Rows that are 'pending' or
-- 'partial' keep their state (TARGET_RAISED leaves them where they are); lowering the
-- target moves nothing (records already in the collection are kept, never re-sent).
-- As in 0002 the rule lives in the database, so whoever raises the target (an operator,
-- a later progressive-ingestion job) cannot forget it.

CREATE FUNCTION raw_products_ximilar_target_raised() RETURNS trigger AS $$
BEGIN
    IF NEW.ximilar_target_count > OLD.ximilar_target_count
       AND NEW.ximilar_status = 'synced' THEN
        NEW.ximilar_status := 'partial';
        NEW.ximilar_next_at := NULL;
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER trg_raw_products_ximilar_target_raised
    BEFORE UPDATE OF ximilar_target_count ON raw_products
    FOR EACH ROW EXECUTE FUNCTION raw_products_ximilar_target_raised();
