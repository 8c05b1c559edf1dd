-- 0001: the catalog in production (unde_main), in its own schema `catalog`, never `public`.
-- Written only by sync_to_production (the role catalog_writer); read by the app's services
-- through catalog_reader. Column by column in docs/production.md.
--
-- Roles are cluster-wide and created NOLOGIN; a deployment gives the writer a password
-- (ALTER ROLE catalog_writer WITH LOGIN PASSWORD '...') or grants it to an existing login
-- (GRANT catalog_writer TO undeuser), and grants catalog_reader to the services that read.

DO $$
DECLARE
    r TEXT;
BEGIN
    FOREACH r IN ARRAY ARRAY['catalog_writer', 'catalog_reader'] LOOP
        BEGIN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- already there (another database of this cluster, or a concurrent run)
        END;
    END LOOP;
END;
$$;

CREATE SCHEMA catalog;

CREATE TABLE catalog.products (
    brand VARCHAR(50) NOT NULL,
    external_id VARCHAR(100) NOT NULL,
    source VARCHAR(50) NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    price DECIMAL(10,2) NOT NULL CHECK (price > 0),
    currency VARCHAR(10) NOT NULL,
    category TEXT,
    colour VARCHAR(100),
    sizes JSONB NOT NULL DEFAULT '[]',
    composition TEXT,
    image_urls JSONB NOT NULL DEFAULT '[]',
    collage_url TEXT NOT NULL,
    ximilar_record_ids JSONB NOT NULL DEFAULT '[]',
    index_scope TEXT NOT NULL DEFAULT 'off'
        CHECK (index_scope IN ('pilot', 'pgvector', 'off')),
    is_active BOOLEAN NOT NULL DEFAULT true,
    staging_id BIGINT NOT NULL,
    first_synced_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    synced_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (brand, external_id),
    CHECK (jsonb_typeof(sizes) = 'array'),
    CHECK (jsonb_typeof(image_urls) = 'array'),
    CHECK (jsonb_typeof(ximilar_record_ids) = 'array')
);

CREATE INDEX idx_catalog_products_active ON catalog.products (brand, external_id)
    WHERE is_active;

CREATE TABLE catalog.stores (
    brand VARCHAR(50) NOT NULL,
    store_id INTEGER NOT NULL,
    name TEXT,
    address TEXT,
    city VARCHAR(100),
    country VARCHAR(10),
    mall_name TEXT,
    latitude DECIMAL(10,7),
    longitude DECIMAL(10,7),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (brand, store_id)
);

-- The current answer per (brand, store, product); the history stays in staging.
-- Keyed product first: the app asks "which stores have these products".
CREATE TABLE catalog.availability (
    brand VARCHAR(50) NOT NULL,
    external_id VARCHAR(100) NOT NULL,
    store_id INTEGER NOT NULL,
    sizes_in_stock JSONB NOT NULL CHECK (jsonb_typeof(sizes_in_stock) = 'array'),
    fetched_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (brand, external_id, store_id)
);

CREATE INDEX idx_catalog_availability_fetched ON catalog.availability (fetched_at);

REVOKE ALL ON SCHEMA catalog FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA catalog FROM PUBLIC;
GRANT USAGE ON SCHEMA catalog TO catalog_writer, catalog_reader;
-- The writer upserts; it never deletes (a delisted product is kept inactive) nor alters.
GRANT SELECT, INSERT, UPDATE ON catalog.products, catalog.stores, catalog.availability
    TO catalog_writer;
GRANT SELECT ON catalog.products, catalog.stores, catalog.availability TO catalog_reader;
