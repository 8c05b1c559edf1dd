"""The staging schema is the source document's, to the column; our additions only extend it."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from psycopg import errors

from undecat.adapters.postgres.migrate import load_migrations
from undecat.domain.status import ImageStatus, SyncStatus, XimilarStatus

# Transcribed from catalog-infrastructure.ru.md, section 6: (column, type, default, nullable).
V, TS, J = "varchar", "timestamp with time zone", "jsonb"
DOCUMENT_COLUMNS: dict[str, list[tuple[str, str, str | None, bool]]] = {
    "raw_products": [
        ("id", "bigint", "nextval('raw_products_id_seq'::regclass)", False),
        ("source", f"{V}(50)", None, False),
        ("external_id", f"{V}(100)", None, False),
        ("brand", f"{V}(50)", None, False),
        ("name", "text", None, True),
        ("description", "text", None, True),
        ("price", "numeric(10,2)", None, True),
        ("currency", f"{V}(10)", "'AED'::character varying", True),
        ("category", "text", None, True),
        ("colour", f"{V}(100)", None, True),
        ("sizes", J, None, True),
        ("composition", "text", None, True),
        ("original_image_urls", J, None, True),
        ("image_urls", J, None, True),
        ("collage_url", "text", None, True),
        ("raw_data", J, None, True),
        ("scraped_at", TS, None, False),
        ("image_status", f"{V}(20)", "'pending'::character varying", True),
        ("sync_status", f"{V}(20)", "'pending'::character varying", True),
        ("ximilar_status", f"{V}(20)", "'pending'::character varying", True),
        ("ximilar_synced_at", TS, None, True),
        ("index_scope", "text", "'off'::text", True),
        ("ximilar_synced_urls", J, "'[]'::jsonb", True),
        ("ximilar_target_count", "smallint", "2", True),
        ("synced_at", TS, None, True),
        ("error_message", "text", None, True),
        ("created_at", TS, "now()", True),
        ("updated_at", TS, "now()", True),
    ],
    "raw_availability": [
        ("id", "bigint", "nextval('raw_availability_id_seq'::regclass)", False),
        ("brand", f"{V}(50)", None, False),
        ("store_id", "integer", None, False),
        ("product_id", f"{V}(100)", None, False),
        ("sizes_in_stock", J, None, False),
        ("fetched_at", TS, None, False),
        ("created_at", TS, "now()", True),
    ],
    "raw_stores": [
        ("id", "integer", "nextval('raw_stores_id_seq'::regclass)", False),
        ("brand", f"{V}(50)", None, False),
        ("store_id", "integer", None, False),
        ("name", "text", None, True),
        ("address", "text", None, True),
        ("city", f"{V}(100)", "'Dubai'::character varying", True),
        ("country", f"{V}(10)", "'AE'::character varying", True),
        ("mall_name", "text", None, True),
        ("latitude", "numeric(10,7)", None, True),
        ("longitude", "numeric(10,7)", None, True),
        ("created_at", TS, "now()", True),
    ],
    "scraper_logs": [
        ("id", "bigint", "nextval('scraper_logs_id_seq'::regclass)", False),
        ("scraper_name", f"{V}(100)", None, False),
        ("run_id", f"{V}(100)", None, True),
        ("status", f"{V}(20)", None, False),
        ("records_fetched", "integer", "0", True),
        ("records_new", "integer", "0", True),
        ("records_updated", "integer", "0", True),
        ("records_errors", "integer", "0", True),
        ("started_at", TS, None, False),
        ("completed_at", TS, None, True),
        ("duration_seconds", "integer", None, True),
        ("error_message", "text", None, True),
        ("metadata", J, None, True),
        ("created_at", TS, "now()", True),
    ],
}

DOCUMENT_INDEXES = {
    "idx_raw_availability_brand_product": "(brand, product_id)",
    "idx_raw_availability_brand_store": "(brand, store_id)",
    "idx_raw_availability_fetched": "(fetched_at)",
    "idx_raw_availability_lookup": "(brand, store_id, product_id, fetched_at DESC)",
    "idx_raw_availability_product": "(product_id)",
    "idx_raw_availability_unique_daily": (
        "(brand, store_id, product_id, to_date_immutable(fetched_at))"
    ),
    "idx_raw_products_brand": "(brand)",
    "idx_raw_products_external_id": "(external_id)",
    "idx_raw_products_image_status": "(image_status)",
    "idx_raw_products_scraped_at": "(scraped_at)",
    "idx_raw_products_sync_status": "(sync_status)",
    "idx_raw_products_ximilar_status": "(ximilar_status)",
    "idx_scraper_logs_name": "(scraper_name)",
    "idx_scraper_logs_started": "(started_at DESC)",
    "raw_products_source_external_id_key": "(source, external_id)",
    "raw_stores_brand_store_id_key": "(brand, store_id)",
}
UNIQUE = {
    "idx_raw_availability_unique_daily",
    "raw_products_source_external_id_key",
    "raw_stores_brand_store_id_key",
}

_COLUMNS = """
SELECT column_name,
       CASE WHEN data_type = 'character varying' THEN 'varchar(' || character_maximum_length || ')'
            WHEN data_type = 'numeric'
                 THEN 'numeric(' || numeric_precision || ',' || numeric_scale || ')'
            ELSE data_type END,
       column_default, is_nullable = 'YES'
FROM information_schema.columns WHERE table_schema = 'public' AND table_name = %s
ORDER BY ordinal_position
"""


def _columns(conn: psycopg.Connection[tuple[object, ...]], table: str) -> list[tuple[object, ...]]:
    return [tuple(row) for row in conn.execute(_COLUMNS, (table,))]


@pytest.fixture(scope="module")
def document_only(pg_server: object, empty_dsn: str) -> str:
    """A database holding migration 0001 alone: the document's schema."""
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        conn.execute(load_migrations("staging")[0].sql.encode())
    return empty_dsn


@pytest.mark.parametrize("table", sorted(DOCUMENT_COLUMNS))
def test_0001_is_the_documents_schema(document_only: str, table: str) -> None:
    """Migration 0001 creates each table with the document's columns, types and defaults."""
    with psycopg.connect(document_only) as conn:
        assert _columns(conn, table) == DOCUMENT_COLUMNS[table]


@pytest.mark.parametrize("table", sorted(DOCUMENT_COLUMNS))
def test_later_migrations_keep_every_document_column(staging_dsn: str, table: str) -> None:
    """After every migration the document's columns are still there, unchanged and in order."""
    with psycopg.connect(staging_dsn) as conn:
        columns = _columns(conn, table)
    assert columns[: len(DOCUMENT_COLUMNS[table])] == DOCUMENT_COLUMNS[table]


def test_every_document_index_exists(staging_dsn: str) -> None:
    """Each index of the document exists with its columns and uniqueness."""
    with psycopg.connect(staging_dsn) as conn:
        rows = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
        ).fetchall()
    defs: dict[str, str] = {str(name): str(sql) for name, sql in rows}
    for name, columns in DOCUMENT_INDEXES.items():
        assert name in defs, name
        assert defs[name].endswith(f"USING btree {columns}"), defs[name]
        assert defs[name].startswith("CREATE UNIQUE INDEX") == (name in UNIQUE), name


def test_one_availability_row_per_store_product_and_utc_day(staging_dsn: str) -> None:
    """The daily unique index refuses a second row for the same UTC day, allows the next day."""
    insert = (
        "INSERT INTO raw_availability (brand, store_id, product_id, sizes_in_stock, fetched_at)"
        " VALUES ('zara', 7, 'p1', '[]', %s)"
    )
    with psycopg.connect(staging_dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE raw_availability")
        conn.execute(insert, ("2026-12-01 23:30+04",))  # 19:30 UTC on Dec 1
        with pytest.raises(errors.UniqueViolation):
            conn.execute(insert, ("2026-12-01 10:00+00",))
        conn.execute(insert, ("2026-12-02 00:30+00",))


@pytest.mark.parametrize(
    ("column", "states"),
    [("image_status", ImageStatus), ("ximilar_status", XimilarStatus), ("sync_status", SyncStatus)],
)
def test_status_columns_accept_exactly_the_domain_states(
    staging_dsn: str, column: str, states: type[ImageStatus | XimilarStatus | SyncStatus]
) -> None:
    """Every state of the domain's machine is storable; anything else is refused."""
    with psycopg.connect(staging_dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE raw_products")
        for n, state in enumerate(states):
            conn.execute(
                "INSERT INTO raw_products (source, external_id, brand, scraped_at, "
                f"{column}) VALUES ('apify_zara', %s, 'zara', now(), %s)",
                (str(n), state.value),
            )
        with pytest.raises(errors.CheckViolation):
            conn.execute(
                "INSERT INTO raw_products (source, external_id, brand, scraped_at, "
                f"{column}) VALUES ('apify_zara', 'x', 'zara', now(), 'uploded')",
            )


def test_0001_matches_the_source_document_text() -> None:
    """0001 holds the document's SQL block verbatim (when the document is beside the repo)."""
    spec = Path(__file__).resolve().parents[2] / "shared" / "spec" / "catalog-infrastructure.ru.md"
    ours = load_migrations("staging")[0].sql
    body = ours.split("\n\n", 1)[1]  # after our two-line header
    if spec.exists():
        assert body in spec.read_text(encoding="utf-8")
    # Without the document, the transcription above still checks the result column by column.
    assert body.startswith("-- DATABASE: unde_staging")
