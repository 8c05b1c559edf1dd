"""Foundation: batched upsert vs the document's row-by-row loop; claim cost vs table size."""

from __future__ import annotations

import contextlib
import json
import statistics
import time
from datetime import UTC, datetime, timedelta

import psycopg
from tests.fix_pgbouncer import running_pgbouncer_for
from tests.seed import draft, seed_rows
from tests.strategies import zara_item

from benchmarks._db import staging_database
from undecat.adapters.postgres import Database, PostgresCatalogStore, PostgresWorkQueue
from undecat.adapters.postgres.catalog import _copy_row as copy_row
from undecat.domain.models import ProductDraft
from undecat.domain.stages import Stage
from undecat.redact import Secret

PRODUCTS = 47_000

# The source document's statement, one per item (section 2, the collection process).
_DOCUMENT_UPSERT = """
    INSERT INTO raw_products (source, external_id, brand, name, price,
                              currency, category, colour, sizes,
                              composition, description,
                              original_image_urls, image_status,
                              raw_data, scraped_at)
    VALUES (%s, %s, %s, %s, %s, 'AED', %s, %s, %s, %s, %s, %s, 'pending', %s, NOW())
    ON CONFLICT (source, external_id) DO UPDATE SET
        name = EXCLUDED.name,
        price = EXCLUDED.price,
        original_image_urls = EXCLUDED.original_image_urls,
        raw_data = EXCLUDED.raw_data,
        scraped_at = EXCLUDED.scraped_at,
        updated_at = NOW()
"""


def _drafts() -> list[ProductDraft]:
    # raw_data of the document's item shape (two parts of composition, colours, sizes).
    return [draft(n, photos=5, raw_data=zara_item(500_000_000 + n)) for n in range(PRODUCTS)]


def _document_loop(dsn: str, drafts: list[ProductDraft]) -> float:
    started = time.perf_counter()
    # prepare_threshold=None: behind PgBouncer (transaction mode) the document's loop would
    # otherwise fail on psycopg's automatic prepared statements after five executions.
    with psycopg.connect(dsn, autocommit=True, prepare_threshold=None) as conn:
        for d in drafts:
            conn.execute(_DOCUMENT_UPSERT, document_params(d))
    return time.perf_counter() - started


def _copy_floor(dsn: str, drafts: list[ProductDraft]) -> float:
    """The same rows written by COPY: the table's own cost, with no conflict handling at all."""
    columns = (
        "source, external_id, brand, name, description, price, currency, category, colour,"
        " sizes, composition, original_image_urls, raw_data, scraped_at"
    )
    started = time.perf_counter()
    now = datetime.now(UTC)
    with (
        psycopg.connect(dsn) as conn,
        conn.cursor() as cur,
        cur.copy(f"COPY raw_products ({columns}) FROM STDIN") as copy,
    ):
        for d in drafts:
            row = copy_row(d)  # the store's own row encoding (JSON as UTF-8 bytes)
            json_text = tuple(v.decode() if isinstance(v, bytes) else v for v in row)
            copy.write_row((*json_text, now))
    return time.perf_counter() - started


def _ours(dsn: str, drafts: list[ProductDraft]) -> float:
    with Database(Secret(dsn)) as db:
        store = PostgresCatalogStore(db)
        started = time.perf_counter()
        store.upsert_products(drafts, datetime.now(UTC))
        return time.perf_counter() - started


def _truncate(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE raw_products RESTART IDENTITY")


def _compare(label: str, dsn: str, drafts: list[ProductDraft]) -> None:
    doc_new = _document_loop(dsn, drafts)
    doc_again = _document_loop(dsn, drafts)
    _truncate(dsn)
    ours_new = _ours(dsn, drafts)
    ours_again = _ours(dsn, drafts)
    _truncate(dsn)
    floor = _copy_floor(dsn, drafts)
    _truncate(dsn)
    print(
        f"floor: COPY of the same {PRODUCTS:,} rows {label:13}: {floor:6.2f} s;"
        f" ours (new) is {ours_new / floor:.2f}x the floor, the document loop"
        f" {doc_new / floor:.2f}x",
        flush=True,
    )
    for what, ours, doc in (("new", ours_new, doc_new), ("unchanged", ours_again, doc_again)):
        print(
            f"upsert {PRODUCTS:,} {what:9} products {label:13}: ours {ours:6.2f} s "
            f"({PRODUCTS / ours:,.0f}/s), document loop {doc:6.2f} s "
            f"({PRODUCTS / doc:,.0f}/s) -> {doc / ours:.1f}x faster",
            flush=True,
        )


def upsert() -> None:
    """47,000 products, new and then unchanged: ours against the document's loop.

    Measured directly on the server and through PgBouncer (transaction mode), the way every
    host reaches staging in the document's deployment.
    """
    drafts = _drafts()
    with staging_database("bench_upsert") as dsn:
        _compare("direct", dsn, drafts)
        with running_pgbouncer_for(dsn) as bouncer:
            dbname = str(psycopg.conninfo.conninfo_to_dict(dsn)["dbname"])
            _compare("via PgBouncer", bouncer.dsn_for(dbname), drafts)


def claim(rounds: int = 40) -> None:
    """A 200-row claim with 10,000 vs 1,000,000 pending rows in the table.

    Both tables live side by side and their claims alternate, so the load of the machine
    falls on both alike; the figure is the ratio of the medians.
    """
    sizes = (10_000, 1_000_000)
    with contextlib.ExitStack() as stack:
        queues = {}
        for rows in sizes:
            dsn = stack.enter_context(staging_database("bench_claim"))
            seed_rows(dsn, rows)
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE raw_products")
            db = stack.enter_context(Database(Secret(dsn)))
            queues[rows] = PostgresWorkQueue(db, Stage.DOWNLOAD)
        timings: dict[int, list[float]] = {rows: [] for rows in sizes}
        for n in range(rounds):
            for rows in sizes if n % 2 else reversed(sizes):
                started = time.perf_counter()
                claims = queues[rows].claim(f"bench-{n}", 200, timedelta(hours=1))
                timings[rows].append(time.perf_counter() - started)
                assert len(claims) == 200
    small, large = (statistics.median(timings[rows]) * 1000 for rows in sizes)
    print(
        f"claim 200 rows (median of {rounds}, interleaved): 10,000-row table {small:.2f} ms,"
        f" 1,000,000-row table {large:.2f} ms -> the larger table costs {large / small:.2f}x"
    )


def main() -> None:
    """Run the foundation benchmarks."""
    upsert()
    claim()


def document_params(d: ProductDraft) -> tuple[object, ...]:
    """The parameters of the source document's per-item upsert, as its loop builds them."""
    return (
        d.source,
        d.external_id,
        d.brand,
        d.name,
        d.price,
        d.category,
        d.colour,
        json.dumps(list(d.sizes)),
        d.composition,
        d.description,
        json.dumps(list(d.original_image_urls)),
        json.dumps(d.raw_data),
    )
