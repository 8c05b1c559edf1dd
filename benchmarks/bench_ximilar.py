"""Ximilar sync of 1,000 pilot SKUs: requests, records, a second run, and time vs a naive loop.

Both sides use the real client against the local fake collection and the same staging
database. The naive baseline is the source document's loop: one insert request per product
(its two photos), one UPDATE per product. The rate limiter runs on a fake clock, so the
wall time measured is our own overhead; the time the requests would take at the document's
``XIMILAR_RATE_LIMIT=10`` is reported separately (requests / 10).
"""

from __future__ import annotations

import time
from datetime import timedelta

import psycopg
from psycopg.types.json import Jsonb
from tests.fakes import FakeClock
from tests.fix_ximilar import COLLECTION, PREFIX, TOKEN, execute, seed_products, serve

from benchmarks._db import staging_database
from undecat.adapters.postgres import Database, PostgresWorkQueue
from undecat.adapters.postgres.rows import PRODUCT_COLUMNS, product_from_row
from undecat.adapters.ximilar import RateLimiter, XimilarClient
from undecat.domain.stages import Stage
from undecat.domain.ximilar import plan_sync
from undecat.jobs.ximilar import ximilar_sync
from undecat.redact import Secret

SKUS = 1_000
RATE = 10.0  # the document's XIMILAR_RATE_LIMIT


def _client(url: str, clock: FakeClock) -> XimilarClient:
    return XimilarClient(
        url,
        PREFIX,
        Secret(TOKEN),
        Secret(COLLECTION),
        limiter=RateLimiter(RATE, clock),
        clock=clock,
    )


def _ours(dsn: str) -> tuple[float, int, int, int, float]:
    """Return wall seconds, requests, records stored, requests of a second run, virtual s."""
    clock = FakeClock()
    server = serve(time.monotonic)
    fake = next(server)
    client = _client(fake.url, clock)
    db = Database(Secret(dsn), max_size=2)
    try:
        queue = PostgresWorkQueue(db, Stage.XIMILAR)
        started, virtual = time.perf_counter(), clock.monotonic()
        ximilar_sync(queue, client, owner="bench", lease=timedelta(hours=1), batch_size=1000)
        wall = time.perf_counter() - started
        virtual = clock.monotonic() - virtual
        requests, stored = len(fake.requests), sum(fake.stored.values())
        ximilar_sync(queue, client, owner="bench", lease=timedelta(hours=1), batch_size=1000)
        second = len(fake.requests) - requests
        assert fake.resent_while_held == {}
    finally:
        db.close()
        client.close()
        server.close()
    return wall, requests, stored, second, virtual


def _naive(dsn: str) -> tuple[float, int]:
    """The document's loop: one request and one UPDATE per product."""
    clock = FakeClock()
    server = serve(time.monotonic)
    fake = next(server)
    client = _client(fake.url, clock)
    try:
        started = time.perf_counter()
        with psycopg.connect(dsn, row_factory=psycopg.rows.dict_row) as conn:
            rows = conn.execute(
                f"SELECT {', '.join(PRODUCT_COLUMNS)} FROM raw_products"
                " WHERE image_status IN ('uploaded', 'collage_ready')"
                " AND ximilar_status IN ('pending', 'partial') AND index_scope = 'pilot'"
                " LIMIT 1000"
            ).fetchall()
            for row in rows:
                plan = plan_sync(product_from_row(row))
                client.insert([r.fields() for r in plan.to_insert])
                conn.execute(
                    "UPDATE raw_products SET ximilar_status = 'synced', ximilar_synced_urls = %s,"
                    " ximilar_synced_at = now() WHERE id = %s",
                    (Jsonb([r.url for r in plan.to_insert]), row["id"]),
                )
                conn.commit()
        wall = time.perf_counter() - started
        requests = len(fake.requests)
    finally:
        client.close()
        server.close()
    return wall, requests


def main() -> None:
    """Print the figures of docs/benchmarks.md (Ximilar sync)."""
    with staging_database("bench_ximilar") as dsn:
        seed_products(dsn, SKUS, photos=3)
        wall, requests, stored, second, virtual = _ours(dsn)
        execute(dsn, "TRUNCATE raw_products RESTART IDENTITY")
        seed_products(dsn, SKUS, photos=3)
        naive_wall, naive_requests = _naive(dsn)
    print(f"{SKUS} pilot SKUs, 3 photos each, target 2")
    print(f"requests made:            {requests} (goal <= 200)")
    print(f"records inserted:         {stored}")
    print(f"requests on a second run: {second}")
    print(
        f"naive loop:               {naive_requests} requests "
        f"({naive_requests / requests:.1f}x ours)"
    )
    print(
        f"at {RATE:g} req/s:             ours {requests / RATE:.0f} s"
        f" (limiter clock {virtual:.1f} s), naive {naive_requests / RATE:.0f} s"
    )
    print(
        f"wall time without the rate limit: ours {wall:.2f} s, naive {naive_wall:.2f} s"
        f" -> naive / ours = {naive_wall / wall:.1f}x"
    )
