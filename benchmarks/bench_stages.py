"""Every stage's database work at loopback, at 0.5 ms round trip, and at 0.5 ms via PgBouncer.

The document's hosts reach PostgreSQL through PgBouncer across the private network; this
kernel has no ``netem``, so the latency comes from :mod:`benchmarks.relay` (a userspace
relay in its own process that delays each direction by half the round trip). Three routes:

* ``loopback`` -- straight to the server on 127.0.0.1;
* ``0.5 ms`` -- through the relay, calibrated so ``SELECT 1`` costs 0.5 ms more than on
  loopback (the relay's own thread hand-offs are counted in that 0.5 ms);
* ``0.5 ms + PgBouncer`` -- through the relay to the suite's PgBouncer (transaction mode),
  which sits next to the server, as on the document's database host.

Each stage's database work is run by our adapters and by the seed-style baseline (the
source document's loops: one autocommitted statement per row), on the same rows, in
alternating order, best of two; every figure is printed as baseline / ours. The round trips
per 1,000 products are counted at the relay (client bursts that follow server bytes), not
estimated.

For the scraper's stages (availability upsert, sync to production; benchmarks/bench_scraper.py)
the same three routes and the same table are available: ``with routes_for(dsn) as routes``
gives each route's DSN and relay, and :func:`compare` measures one stage on one route and
adds its row to the table that :func:`print_table` prints.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import conninfo
from tests.fix_pgbouncer import running_pgbouncer_for
from tests.seed import seed_rows
from tests.strategies import zara_item

from benchmarks._db import staging_database
from benchmarks.bench_foundation import _DOCUMENT_UPSERT, document_params
from benchmarks.relay import RelayProcess, calibrated_relay, measured_rtt_ms
from undecat.adapters.apify import mapper_for
from undecat.adapters.postgres import Database, PostgresCatalogStore, PostgresWorkQueue
from undecat.domain.models import Claim
from undecat.domain.stages import CollageStored, PhotosStored, Stage, XimilarProgress
from undecat.domain.status import XimilarStatus
from undecat.jobs.settle import SETTLE_BATCH
from undecat.redact import Secret

__all__ = ["ROWS", "Route", "compare", "print_table", "routes_for"]

#: Products per measured run (both sides); the seed's loops are linear in it.
ROWS = 2_000
TARGET_RTT_MS = 0.5
LEASE = timedelta(hours=1)


@dataclass
class Route:
    """One way to the database: its DSN maker and, behind a relay, the relay (for counting)."""

    name: str
    dsn: str
    relay: RelayProcess | None
    rtt_ms: float


@dataclass
class _Row:
    stage: str
    route: str
    ours: float
    baseline: float
    trips_ours: float | None = None
    trips_baseline: float | None = None


@dataclass
class _Table:
    rows: list[_Row] = field(default_factory=list)


TABLE = _Table()


@contextlib.contextmanager
def routes_for(dsn: str) -> Iterator[list[Route]]:
    """The three routes to the database of ``dsn`` (a superuser DSN of the test server)."""
    with contextlib.ExitStack() as stack:
        loopback_ms = measured_rtt_ms(dsn)
        relay, added = stack.enter_context(calibrated_relay(dsn, rtt_ms=TARGET_RTT_MS))
        bouncer = stack.enter_context(running_pgbouncer_for(dsn))
        dbname = str(conninfo.conninfo_to_dict(dsn)["dbname"])
        via_bouncer = bouncer.dsn_for(dbname)
        bouncer_ms = measured_rtt_ms(via_bouncer)
        brelay, badded = stack.enter_context(calibrated_relay(via_bouncer, rtt_ms=TARGET_RTT_MS))
        print(
            f"routes: loopback SELECT 1 = {loopback_ms:.3f} ms; relay adds {added:.3f} ms;"
            f" PgBouncer SELECT 1 = {bouncer_ms:.3f} ms, its relay adds {badded:.3f} ms",
            flush=True,
        )
        yield [
            Route("loopback", dsn, None, 0.0),
            Route(f"{TARGET_RTT_MS} ms", relay.route(dsn), relay, added),
            Route(f"{TARGET_RTT_MS} ms + PgBouncer", brelay.route(via_bouncer), brelay, badded),
        ]


def compare(
    stage: str,
    route: Route,
    prepare: Callable[[], None],
    ours: Callable[[str], object],
    baseline: Callable[[str], object],
    *,
    products: int = ROWS,
    rounds: int = 2,
) -> _Row:
    """Time ``ours`` and ``baseline`` (each given the route's DSN) after ``prepare``.

    The two alternate (``rounds`` times each, the order swapped every round) and the best of
    each is kept; behind a relay, the round trips of the first run of each are counted and
    given per 1,000 products. The row is added to the table :func:`print_table` prints.
    """
    best = {"ours": float("inf"), "baseline": float("inf")}
    trips: dict[str, float] = {}
    for n in range(rounds):
        order = (("baseline", baseline), ("ours", ours))
        for side, run in order if n % 2 == 0 else order[::-1]:
            prepare()
            if route.relay is not None:
                route.relay.round_trips(reset=True)
            started = time.perf_counter()
            run(route.dsn)
            best[side] = min(best[side], time.perf_counter() - started)
            if route.relay is not None and side not in trips:
                trips[side] = route.relay.round_trips(reset=True) * 1000 / products
    row = _Row(
        stage, route.name, best["ours"], best["baseline"], trips.get("ours"), trips.get("baseline")
    )
    TABLE.rows.append(row)
    counted = (
        f"; round trips / 1,000 products: ours {row.trips_ours:,.0f},"
        f" baseline {row.trips_baseline:,.0f}"
        if row.trips_ours is not None and row.trips_baseline is not None
        else ""
    )
    print(
        f"  {stage:22} {route.name:18} ours {row.ours:7.3f} s, baseline {row.baseline:7.3f} s"
        f" -> {row.baseline / row.ours:5.1f}x{counted}",
        flush=True,
    )
    return row


def print_table() -> None:
    """Print the stage x route table (ours, baseline, baseline / ours) and round trips."""
    routes = list(dict.fromkeys(r.route for r in TABLE.rows))
    stages = list(dict.fromkeys(r.stage for r in TABLE.rows))
    by = {(r.stage, r.route): r for r in TABLE.rows}
    print(f"\n{ROWS:,} products per run; s = seconds; ratio = baseline / ours")
    print("| stage | " + " | ".join(routes) + " | round trips / 1,000 (ours / baseline) |")
    print("|---" * (len(routes) + 2) + "|")
    for stage in stages:
        cells = []
        for route in routes:
            r = by.get((stage, route))
            cells.append(
                ""
                if r is None
                else f"{r.ours:.2f} / {r.baseline:.2f} s ({r.baseline / r.ours:.1f}x)"
            )
        counted = next(
            (r for route in routes if (r := by.get((stage, route))) and r.trips_ours is not None),
            None,
        )
        trips = (
            f"{counted.trips_ours:,.0f} / {counted.trips_baseline:,.0f}"
            if counted is not None and counted.trips_baseline is not None
            else ""
        )
        print(f"| {stage} | " + " | ".join(cells) + f" | {trips} |")


# --- the stages ---------------------------------------------------------------------------------


def _truncate(admin: str) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("TRUNCATE raw_products RESTART IDENTITY")


def _seeded(admin: str, **columns: Any) -> Callable[[], None]:
    def prepare() -> None:
        _truncate(admin)
        seed_rows(admin, ROWS, **columns)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("ANALYZE raw_products")

    return prepare


def _document(dsn: str) -> psycopg.Connection[tuple[object, ...]]:
    # prepare_threshold=None: behind PgBouncer (transaction mode) the seed's loop would
    # otherwise fail on psycopg's automatic prepared statements.
    return psycopg.connect(dsn, autocommit=True, prepare_threshold=None)


def _collect(admin: str, route: Route) -> None:
    mapper = mapper_for("zara")
    drafts = [mapper(json.loads(json.dumps(zara_item(600_000_000 + n)))) for n in range(ROWS)]

    def ours(dsn: str) -> None:
        with Database(Secret(dsn)) as db:
            PostgresCatalogStore(db).upsert_products(drafts, datetime.now(UTC))

    def baseline(dsn: str) -> None:
        with _document(dsn) as conn:
            for d in drafts:
                conn.execute(_DOCUMENT_UPSERT, document_params(d))

    compare("collect upsert", route, lambda: _truncate(admin), ours, baseline)


def _drain(
    dsn: str,
    stage: Stage,
    batch: int,
    settle: Callable[[PostgresWorkQueue, list[Claim]], None] | None,
    *,
    chunk: int = SETTLE_BATCH,
) -> None:
    """Claim ``batch`` at a time; settle the claims ``chunk`` at a time, as the stages do."""
    with Database(Secret(dsn)) as db:
        queue = PostgresWorkQueue(db, stage)
        while claims := queue.claim("bench", batch, LEASE):
            if settle is not None:
                for start in range(0, len(claims), chunk):
                    settle(queue, claims[start : start + chunk])


def _claims(admin: str, route: Route) -> None:
    def baseline(dsn: str) -> None:
        # One statement per row: read a batch, then lease its rows one by one.
        with _document(dsn) as conn:
            while ids := conn.execute(
                "SELECT id FROM raw_products WHERE image_status = 'pending'"
                " AND download_owner IS NULL ORDER BY id LIMIT 200"
            ).fetchall():
                for (product_id,) in ids:
                    conn.execute(
                        "UPDATE raw_products SET download_owner = %s,"
                        " download_lease_until = now() + interval '1 hour' WHERE id = %s",
                        ("bench", product_id),
                    )

    compare(
        "claims (200 a batch)",
        route,
        _seeded(admin),
        lambda dsn: _drain(dsn, Stage.DOWNLOAD, 200, None),
        baseline,
    )


def _photo_urls(external_id: object) -> tuple[str, ...]:
    base = f"http://s3.local/unde-images/originals/zara/{external_id}"
    return (f"{base}/1.jpg", f"{base}/2.jpg")


def _download(admin: str, route: Route) -> None:
    def complete(queue: PostgresWorkQueue, claims: list[Claim]) -> None:
        # Results buffered and written 50 at a time, as jobs/download.py does.
        queue.complete_many([(c, PhotosStored(_photo_urls(c.product.external_id))) for c in claims])

    def baseline(dsn: str) -> None:
        with _document(dsn) as conn:
            while rows := conn.execute(
                "SELECT id, external_id, brand, original_image_urls FROM raw_products"
                " WHERE image_status = 'pending' LIMIT 200"
            ).fetchall():
                for row in rows:
                    conn.execute(
                        "UPDATE raw_products SET image_urls = %s, image_status = 'uploaded',"
                        " updated_at = NOW() WHERE id = %s",
                        (json.dumps(list(_photo_urls(row[1]))), row[0]),
                    )

    compare(
        "download bookkeeping",
        route,
        _seeded(admin),
        lambda dsn: _drain(dsn, Stage.DOWNLOAD, 200, complete),
        baseline,
    )


def _collage_url(external_id: object) -> str:
    return f"http://s3.local/unde-images/collages/zara/{external_id}.jpg"


def _collage(admin: str, route: Route) -> None:
    def complete(queue: PostgresWorkQueue, claims: list[Claim]) -> None:
        # Results buffered and written 50 at a time, as jobs/collage.py does.
        queue.complete_many(
            [(c, CollageStored(_collage_url(c.product.external_id))) for c in claims]
        )

    def baseline(dsn: str) -> None:
        # process_sku: the ids of the work, then per product its SELECT and its UPDATE.
        with _document(dsn) as conn:
            while ids := conn.execute(
                "SELECT id FROM raw_products WHERE image_status = 'uploaded' LIMIT 200"
            ).fetchall():
                for (product_id,) in ids:
                    row = conn.execute(
                        "SELECT id, external_id, brand, image_urls FROM raw_products"
                        " WHERE id = %s AND image_status = 'uploaded'",
                        (product_id,),
                    ).fetchone()
                    conn.execute(
                        "UPDATE raw_products SET collage_url = %s, image_status = 'collage_ready',"
                        " updated_at = NOW() WHERE id = %s",
                        (_collage_url(row[1] if row else product_id), product_id),
                    )

    compare(
        "collage bookkeeping",
        route,
        _seeded(admin, image_status="uploaded"),
        lambda dsn: _drain(dsn, Stage.COLLAGE, 200, complete),
        baseline,
    )


def _ximilar(admin: str, route: Route) -> None:
    urls = ("http://s3.local/a/1.jpg", "http://s3.local/a/2.jpg")

    def complete(queue: PostgresWorkQueue, claims: list[Claim]) -> None:
        # A batch's outcomes in one call, as jobs/ximilar.py writes them.
        done = []
        for claim in claims:
            ids = (f"{claim.product.external_id}-1", f"{claim.product.external_id}-2")
            done.append((claim, XimilarProgress(urls, ids, XimilarStatus.SYNCED)))
        queue.complete_many(done)

    def baseline(dsn: str) -> None:
        with _document(dsn) as conn:
            while rows := conn.execute(
                "SELECT id, external_id, brand, name, category, price, image_urls,"
                " ximilar_synced_urls, ximilar_target_count FROM raw_products"
                " WHERE image_status IN ('uploaded', 'collage_ready')"
                " AND ximilar_status IN ('pending', 'partial') AND index_scope = 'pilot'"
                " LIMIT 1000"
            ).fetchall():
                for row in rows:
                    conn.execute(
                        "UPDATE raw_products SET ximilar_status = %s, ximilar_synced_urls = %s,"
                        " ximilar_synced_at = NOW() WHERE id = %s",
                        ("synced", json.dumps(list(urls)), row[0]),
                    )

    compare(
        "ximilar bookkeeping",
        route,
        _seeded(admin, image_status="uploaded", index_scope="pilot"),
        lambda dsn: _drain(dsn, Stage.XIMILAR, 100, complete, chunk=100),
        baseline,
    )


#: The stages of this module; bench_scraper adds its own through :func:`compare`.
STAGES = (_collect, _claims, _download, _collage, _ximilar)


def main() -> None:
    """Run every stage on every route and print the table."""
    TABLE.rows.clear()
    with staging_database("bench_stages") as admin, routes_for(admin) as routes:
        for route in routes:
            print(f"\n{route.name} (added round trip {route.rtt_ms:.3f} ms):", flush=True)
            for stage in STAGES:
                stage(admin, route)
    print_table()
