"""The scraper host: availability upsert, a whole poll, the production sync, the read API.

Sizes (override with ``BENCH_SCRAPER_PRODUCTS``; the issue's sizes are the defaults; run
some parts only with ``BENCH_SCRAPER_PARTS=sync,in_stock``):

1. **upsert** -- 15,000 products x 10 stores = 150,000 availability rows written by
   :class:`PostgresAvailabilityStore` (batches of 1,000 rows, one statement each) vs one
   ``INSERT ... ON CONFLICT`` per row in autocommit, the latter timed on the first 15,000
   rows and compared as rows/s.
2. **poll** -- ``availability_poll`` over 1,000 products x 10 stores against the local fake
   Zara (tests/fix_zara.py), politeness off, one request at a time: products/s and requests
   per product, vs the requests of a per-store loop.
3. **sync** -- ``sync_to_production`` of 47,000 ready products into an empty production
   catalog, then the hourly re-run with nothing changed, then a re-run where all 47,000 were
   re-queued without a change (the worst case: every claim completed, no production write).
4. **in_stock** -- 1,000 calls of ``in_stock`` for 50 random products over 47,000 products
   x 10 stores of ``catalog.availability``: p50/p99, vs one query per product.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import statistics
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import sql
from tests.fix_zara import ZaraServer
from tests.seed import seed_rows

from undecat.adapters.clock import SystemClock
from undecat.adapters.postgres import Database, PostgresWorkQueue, apply_migrations
from undecat.adapters.postgres.availability import PostgresAvailabilityStore, PostgresSyncSource
from undecat.adapters.postgres.embedded import EmbeddedPostgres
from undecat.adapters.postgres.production import PostgresProductionCatalog
from undecat.adapters.zara import ZaraClient, ZaraSettings
from undecat.availability import in_stock
from undecat.domain.models import AvailabilityRecord, SizeInStock
from undecat.domain.stages import Stage
from undecat.jobs.availability import AvailabilityJobs, PollSettings
from undecat.jobs.sync import ProductionSync
from undecat.redact import Secret

PRODUCTS = int(os.environ.get("BENCH_SCRAPER_PRODUCTS", "47000"))
UPSERT_PRODUCTS = min(15_000, PRODUCTS)
POLL_PRODUCTS = min(1_000, PRODUCTS)
STORES = tuple(range(1230, 1240))


@contextlib.contextmanager
def _databases() -> Iterator[tuple[str, str]]:
    """A fresh staging and production database on one (embedded or given) server."""
    server: EmbeddedPostgres | None = None
    admin = os.environ.get("UNDECAT_TEST_DSN")
    if not admin:
        server = EmbeddedPostgres().start()
        admin = server.dsn
    names = [f"bench_scraper_{kind}_{uuid.uuid4().hex[:6]}" for kind in ("s", "p")]
    with psycopg.connect(admin, autocommit=True) as conn:
        for name in names:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    staging, production = (psycopg.conninfo.make_conninfo(admin, dbname=n) for n in names)
    try:
        apply_migrations(Secret(staging), "staging")
        apply_migrations(Secret(production), "production")
        yield staging, production
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            for name in names:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
        if server is not None:
            server.stop()


def _execute(dsn: str, query: str, params: tuple[object, ...] | None = None) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(query.encode(), params)


def _records(count: int, when: datetime) -> list[AvailabilityRecord]:
    sizes = (SizeInStock("800", "M", 3), SizeInStock("800", "S", 6))
    return [
        AvailabilityRecord("zara", store, str(500_000_000 + n), sizes, when)
        for n in range(count)
        for store in STORES
    ]


def bench_upsert(staging: str) -> None:
    """150,000 rows in batches vs one statement per row."""
    records = _records(UPSERT_PRODUCTS, datetime.now(UTC))
    db = Database(Secret(staging), max_size=2)
    try:
        store = PostgresAvailabilityStore(db)
        started = time.perf_counter()
        for start in range(0, len(records), 1000):
            store.write(records[start : start + 1000])
        ours = time.perf_counter() - started
        started = time.perf_counter()
        for start in range(0, len(records), 1000):  # the same day again: every row replaced
            store.write(records[start : start + 1000])
        again = time.perf_counter() - started
    finally:
        db.close()
    _execute(staging, "TRUNCATE raw_availability, availability_poll_state")
    payload = json.dumps([{"colour": "800", "size": "M", "stock": 3}])
    # The floor: the same rows by plain COPY, no conflict handling -- the table's own cost
    # (the document's seven indexes on raw_availability).
    with psycopg.connect(staging, autocommit=True) as conn:
        started = time.perf_counter()
        with conn.cursor().copy(
            "COPY raw_availability (brand, store_id, product_id, sizes_in_stock, fetched_at)"
            " FROM STDIN"
        ) as copy:
            for r in records:
                copy.write_row((r.brand, r.store_id, r.product_id, payload, r.fetched_at))
        floor = time.perf_counter() - started
    _execute(staging, "TRUNCATE raw_availability, availability_poll_state")
    sample = records[:15_000]
    one = (
        "INSERT INTO raw_availability (brand, store_id, product_id, sizes_in_stock, fetched_at)"
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (brand, store_id, product_id,"
        " to_date_immutable(fetched_at)) DO UPDATE SET sizes_in_stock = EXCLUDED.sizes_in_stock,"
        " fetched_at = EXCLUDED.fetched_at"
    )
    with psycopg.connect(staging, autocommit=True, prepare_threshold=None) as conn:
        started = time.perf_counter()
        for r in sample:
            conn.execute(one, (r.brand, r.store_id, r.product_id, payload, r.fetched_at))
        naive = time.perf_counter() - started
    rate, naive_rate = len(records) / ours, len(sample) / naive
    print(f"availability upsert: {UPSERT_PRODUCTS:,} products x {len(STORES)} stores")
    print(f"  ours (1,000-row statements): {ours:.2f} s, {rate:,.0f} rows/s (goal >= 20,000)")
    print(f"  same day again (replace):    {again:.2f} s, {len(records) / again:,.0f} rows/s")
    print(f"  one statement per row:       {naive_rate:,.0f} rows/s (timed on {len(sample):,})")
    print(f"  floor (plain COPY, no conflict): {floor:.2f} s, {len(records) / floor:,.0f} rows/s")
    print(f"  ratio: {rate / naive_rate:.1f}x (goal >= 10x); ours = {ours / floor:.2f}x the floor")


def bench_poll(staging: str) -> None:
    """A whole availability_poll against the fake, politeness off."""
    import trustme  # noqa: PLC0415  # only for the fake's HTTPS listener

    _execute(staging, "TRUNCATE raw_products, raw_availability, availability_poll_state")
    seed_rows(staging, POLL_PRODUCTS)
    _execute(
        staging,
        "UPDATE raw_products SET raw_data = jsonb_build_object('colorsSizesImagesJSON',"
        " jsonb_build_array(jsonb_build_object('id', '800',"
        " 'productId', external_id::bigint + 1)))",
    )
    zara = ZaraServer(trustme.CA())
    rng = random.Random(7)
    for n in range(POLL_PRODUCTS):
        colour = str(500_000_000 + n + 1)
        zara.fake.stock[colour] = {
            s: [("S", rng.randint(0, 5)), ("M", rng.randint(0, 5))]
            for s in STORES[: rng.randint(0, 10)]
        }
    clock = SystemClock()
    client = ZaraClient(
        ZaraSettings(user_agent="bench", base_url=zara.base_url(), delay_min=0, delay_max=0),
        clock=clock,
    )
    db = Database(Secret(staging), max_size=2)
    try:
        jobs = AvailabilityJobs(
            locator=client,
            source=client,
            store=PostgresAvailabilityStore(db),
            clock=clock,
            settings=PollSettings(store_ids=STORES, concurrency=1),
        )
        started = time.perf_counter()
        result = jobs.availability_poll()
        seconds = time.perf_counter() - started
    finally:
        db.close()
        client.close()
        zara.close()
    meta = result.metadata
    per_product = meta["requests"] / max(1, meta["fetched"])
    print(
        f"availability_poll: {POLL_PRODUCTS:,} products (1 colour) x {len(STORES)} stores,"
        " fake Zara"
    )
    print(f"  status {result.status}, {meta['rows']:,} rows, coverage {meta['coverage']}")
    print(f"  {seconds:.2f} s, {meta['fetched'] / seconds:,.0f} products/s")
    print(
        f"  requests per product: {per_product:.2f} (goal 1 per colour);"
        f" a per-store loop: {len(STORES)} -> {len(STORES) / per_product:.0f}x fewer"
    )
    print(
        "  at the default politeness (one request every 5-8 s) one address covers"
        f" ~{3000 / 6.5:,.0f} colour products per hourly run"
    )


def bench_sync(staging: str, production: str) -> None:
    """sync_to_production of PRODUCTS ready products, then unchanged re-runs."""
    _execute(staging, "TRUNCATE raw_products, raw_availability, raw_stores, scraper_logs")
    seed_rows(staging, PRODUCTS, image_status="collage_ready", collage_url="http://s3/c.jpg")
    # A freshly loaded table has no statistics yet; without them the queue's claim may be
    # planned as a rescan per row (minutes on 47,000 rows). A live table is analyzed.
    _execute(staging, "VACUUM ANALYZE raw_products")
    _execute(
        staging,
        "INSERT INTO raw_stores (brand, store_id) SELECT 'zara', s FROM unnest(%s::int[]) s",
        (list(STORES),),
    )
    sdb = Database(Secret(staging), max_size=2)
    pdb = Database(Secret(production), name="production", max_size=2)
    try:

        def run() -> tuple[float, dict[str, object]]:
            job = ProductionSync(
                queue=PostgresWorkQueue(sdb, Stage.SYNC),
                source=PostgresSyncSource(sdb),
                production=PostgresProductionCatalog(pdb),
                clock=SystemClock(),
                owner="bench",
                batch_size=1000,
                lease=timedelta(hours=1),
            )
            started = time.perf_counter()
            result = job.run()
            assert result.status == "success", result.error_message
            return time.perf_counter() - started, result.metadata

        first, meta1 = run()
        second, meta2 = run()
        _execute(staging, "UPDATE raw_products SET sync_status = 'pending'")
        requeued, meta3 = run()
    finally:
        sdb.close()
        pdb.close()
    print(f"sync_to_production: {PRODUCTS:,} ready products into an empty catalog")
    print(
        f"  first run:  {first:.2f} s ({PRODUCTS / first:,.0f} products/s; goal <= 60 s),"
        f" {meta1['products_changed']:,} rows written"
    )
    print(
        f"  re-run, nothing pending (the hourly case): {second:.3f} s"
        f" = {100 * second / first:.2f} % of the first (goal <= 5 %),"
        f" {meta2['products_changed']} rows written"
    )
    print(
        f"  re-run, all re-queued unchanged: {requeued:.2f} s"
        f" = {100 * requeued / first:.0f} % of the first, {meta3['products_changed']} rows written"
    )


def bench_in_stock(production: str) -> None:
    """p99 of in_stock for 50 products over PRODUCTS x 10 stores."""
    _execute(production, "TRUNCATE catalog.availability")
    _execute(
        production,
        "INSERT INTO catalog.availability"
        " (brand, external_id, store_id, sizes_in_stock, fetched_at)"
        " SELECT 'zara', (500000000 + g)::text, s,"
        " CASE WHEN (g + s) %% 3 = 0 THEN '[]'::jsonb ELSE"
        ' \'[{"colour": "800", "size": "M", "stock": 2},'
        '   {"colour": "800", "size": "S", "stock": 5}]\'::jsonb END, now()'
        " FROM generate_series(0, %s) g, unnest(%s::int[]) s",
        (PRODUCTS - 1, list(STORES)),
    )
    _execute(production, "VACUUM ANALYZE catalog.availability")
    rng = random.Random(11)
    ours, naive = [], []
    with psycopg.connect(production, autocommit=True, prepare_threshold=None) as conn:
        for _ in range(1000):
            ids = [str(500_000_000 + rng.randrange(PRODUCTS)) for _ in range(50)]
            started = time.perf_counter()
            in_stock(conn, "zara", ids)
            ours.append(time.perf_counter() - started)
        for _ in range(200):
            ids = [str(500_000_000 + rng.randrange(PRODUCTS)) for _ in range(50)]
            started = time.perf_counter()
            for one in ids:
                in_stock(conn, "zara", [one])
            naive.append(time.perf_counter() - started)

    def p(values: list[float], q: float) -> float:
        return statistics.quantiles(values, n=100)[int(q) - 1] * 1000

    print(f"in_stock: 50 products over {PRODUCTS:,} x {len(STORES)} stores, loopback, 1,000 calls")
    print(
        f"  ours (one query):   p50 {p(ours, 50):.2f} ms, p99 {p(ours, 99):.2f} ms"
        " (goal p99 <= 5 ms)"
    )
    print(
        f"  one query per product: p50 {p(naive, 50):.2f} ms, p99 {p(naive, 99):.2f} ms"
        f" -> {p(naive, 50) / p(ours, 50):.1f}x ours at p50"
    )


def main() -> None:
    """Print the figures of docs/benchmarks.md (scraper host)."""
    parts = os.environ.get("BENCH_SCRAPER_PARTS", "upsert,poll,sync,in_stock").split(",")
    with _databases() as (staging, production):
        if "upsert" in parts:
            bench_upsert(staging)
        if "poll" in parts:
            bench_poll(staging)
        if "sync" in parts:
            bench_sync(staging, production)
        if "in_stock" in parts:
            bench_in_stock(production)
