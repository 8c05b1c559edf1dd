"""Database cost per batch is a constant number of round trips, counted at a TCP relay.

Every statement, BEGIN, COMMIT and pool check crosses the relay of benchmarks/relay.py,
which counts client bursts that follow server bytes: the round trips that multiply the
private network's latency on the document's hosts. Counts, not times.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import psycopg
import pytest
from benchmarks.relay import LatencyRelay
from psycopg import conninfo

from tests.download_fakes import FakeFetcher, FakePreparer
from tests.fakes import MemoryStore
from tests.seed import draft, seed_rows
from undecat.adapters.clock import SystemClock
from undecat.adapters.postgres import Database, PostgresCatalogStore, PostgresWorkQueue
from undecat.adapters.postgres.runs import PostgresRunRecorder
from undecat.domain.models import RunResult
from undecat.domain.stages import PhotosStored, Stage, XimilarProgress
from undecat.domain.status import XimilarStatus
from undecat.errors import PhotoError
from undecat.jobs.download import DownloadSettings, PhotoDownloader
from undecat.redact import Secret

LONG = timedelta(minutes=10)

#: The most round trips any one of these operations may take: BEGIN, a few
#: statements (COPY is two: its start and its data), COMMIT. What matters is that it does not
#: grow with the batch.
MOST = 7


@pytest.fixture
def relay(staging_db: Database, staging_dsn: str) -> Iterator[LatencyRelay]:
    """A counting relay (no added delay) in front of the module's staging database."""
    info = conninfo.conninfo_to_dict(staging_dsn)
    with LatencyRelay(str(info.get("host") or "127.0.0.1"), int(str(info["port"]))) as r:
        yield r


@pytest.fixture
def relayed(relay: LatencyRelay, staging_dsn: str) -> Iterator[Database]:
    """A one-connection pool on the staging database, every byte through the relay.

    Its connection is checked only after an hour idle, so that a slow moment of a loaded
    machine cannot add the pool's liveness check to one count and not to the other.
    """
    db = Database(Secret(relay.route(staging_dsn)), max_size=1, check_after_idle=3600)
    try:
        yield db
    finally:
        db.close()


def _trips(relay: LatencyRelay, action: Callable[[], object]) -> int:
    relay.round_trips(reset=True)
    action()
    return relay.round_trips(reset=True)


def _keep(into: list[list[bool]], action: Callable[[], list[bool]]) -> None:
    into.append(action())


def test_a_claim_costs_the_same_round_trips_for_5_and_200_rows(
    relay: LatencyRelay, relayed: Database, staging_dsn: str
) -> None:
    """Claiming 200 rows takes exactly as many round trips as claiming 5."""
    seed_rows(staging_dsn, 300)
    queue = PostgresWorkQueue(relayed, Stage.DOWNLOAD)
    small = _trips(relay, lambda: queue.claim("small", 5, LONG))
    large = _trips(relay, lambda: queue.claim("large", 200, LONG))
    assert small == large
    assert 1 <= large <= MOST


def test_extending_and_releasing_a_batch_cost_the_same_for_5_and_200_claims(
    relay: LatencyRelay, relayed: Database, staging_dsn: str
) -> None:
    """Extending or releasing the leases of a batch is one transaction whatever its size."""
    seed_rows(staging_dsn, 300)
    queue = PostgresWorkQueue(relayed, Stage.DOWNLOAD)
    small = queue.claim("small", 5, LONG)
    large = queue.claim("large", 200, LONG)
    extend = [_trips(relay, partial(queue.extend, c, LONG)) for c in (small, large)]
    release = [_trips(relay, partial(queue.release, c)) for c in (small, large)]
    assert extend[0] == extend[1] <= MOST
    assert release[0] == release[1] <= MOST


def test_a_completion_or_failure_costs_the_same_round_trips_whatever_the_photo_count(
    relay: LatencyRelay, relayed: Database, staging_dsn: str
) -> None:
    """Completing a product (1 or 20 photos) or failing one is one round trip, like the seed's."""
    seed_rows(staging_dsn, 4)
    queue = PostgresWorkQueue(relayed, Stage.DOWNLOAD)
    claims = queue.claim("w", 4, LONG)
    one = _trips(relay, lambda: queue.complete(claims[0], PhotosStored(("http://s3/1.jpg",))))
    urls = tuple(f"http://s3/{n}.jpg" for n in range(20))
    twenty = _trips(relay, lambda: queue.complete(claims[1], PhotosStored(urls)))
    short = _trips(relay, lambda: queue.fail(claims[2], "HTTP 404"))
    long = _trips(relay, lambda: queue.fail(claims[3], "HTTP 404 " + "x" * 2000))
    assert one == twenty == 1  # one autocommitted UPDATE: no BEGIN, no COMMIT
    assert short == long == 1


def test_completing_or_failing_many_costs_the_same_for_10_and_200_claims(
    relay: LatencyRelay, relayed: Database, staging_dsn: str
) -> None:
    """complete_many and fail_many are one statement whatever the number of claims."""
    seed_rows(staging_dsn, 420)
    queue = PostgresWorkQueue(relayed, Stage.DOWNLOAD)
    trips = {}
    for kind, size in [("complete", 10), ("complete", 200), ("fail", 10), ("fail", 200)]:
        claims = queue.claim(f"{kind}-{size}", size, LONG)
        assert len(claims) == size
        if kind == "complete":
            urls = [tuple(f"http://s3/{c.product.id}/{n}.jpg" for n in range(3)) for c in claims]
            done = [(c, PhotosStored(u)) for c, u in zip(claims, urls, strict=True)]
            action: Callable[[], list[bool]] = partial(queue.complete_many, done)
        else:
            failed = [(c, f"HTTP 404 for photo {c.product.id}") for c in claims]
            action = partial(queue.fail_many, failed)
        written: list[list[bool]] = []
        trips[kind, size] = _trips(relay, partial(_keep, written, action))
        assert written == [[True] * size]
    assert trips["complete", 10] == trips["complete", 200] == 1  # one autocommitted UPDATE
    assert trips["fail", 10] == trips["fail", 200] == 1


def test_ximilar_results_of_both_shapes_cost_two_round_trips_at_most(
    relay: LatencyRelay, relayed: Database, staging_dsn: str
) -> None:
    """Finished and partial Ximilar rows (different columns) settle in at most two statements."""
    seed_rows(staging_dsn, 200, image_status="uploaded", index_scope="pilot")
    queue = PostgresWorkQueue(relayed, Stage.XIMILAR)
    claims = queue.claim("x", 200, LONG)
    assert len(claims) == 200
    done = [
        (
            c,
            XimilarProgress(
                (f"u{c.product.id}",),
                (f"r{c.product.id}",),
                XimilarStatus.PARTIAL if c.product.id % 2 else XimilarStatus.SYNCED,
            ),
        )
        for c in claims
    ]
    written: list[list[bool]] = []
    assert _trips(relay, lambda: written.append(queue.complete_many(done))) <= 2
    assert written == [[True] * 200]
    with psycopg.connect(staging_dsn) as conn:
        rows = conn.execute(
            "SELECT ximilar_status, ximilar_record_ids->>0 = 'r' || id::text,"
            " ximilar_next_at IS NOT NULL, ximilar_attempts FROM raw_products"
            " WHERE id = ANY(%s) ORDER BY id",
            ([c.product.id for c in claims],),
        ).fetchall()
    by_status = {status: (same, waits, attempts) for status, same, waits, attempts in rows}
    assert by_status == {"partial": (True, True, 1), "synced": (True, False, 0)}


def test_a_download_run_costs_round_trips_per_batch_not_per_product(
    relay: LatencyRelay, relayed: Database, staging_dsn: str
) -> None:
    """200 products (some failing) cost a few round trips per batch of results, not one each."""
    seed_rows(staging_dsn, 200)
    bad = {f"https://static.zara.net/p/{n}/1.jpg": PhotoError("HTTP 404") for n in range(0, 200, 7)}
    downloader = PhotoDownloader(
        queue=PostgresWorkQueue(relayed, Stage.DOWNLOAD),
        fetcher=FakeFetcher(bad),  # type: ignore[arg-type]
        preparer=FakePreparer(),
        store=MemoryStore(),
        clock=SystemClock(),
        settings=DownloadSettings(
            owner="w", lease=LONG, batch_size=100, concurrency=2, settle_batch=50
        ),
    )
    relay.round_trips(reset=True)
    result = downloader.download_pending()
    trips = relay.round_trips(reset=True)
    assert (result.records_fetched, result.records_new + result.records_errors) == (200, 200)
    assert result.records_errors == len(bad)
    # Three claims (the last one empty), and each of the ~4 writes of 50 results is one
    # completion and at most one failure statement (a flush racing another may be small).
    # Written one by one, the results alone would be 200.
    assert trips <= 3 * MOST + 2 * (2 * 200 // 50 + 2)


def test_a_run_log_update_costs_the_same_round_trips_whatever_its_metadata(
    relay: LatencyRelay, relayed: Database
) -> None:
    """Opening and closing a run log is one round trip each, small or large metadata."""
    runs = PostgresRunRecorder(relayed)
    rejected = [{"item": n, "reason": "bad"} for n in range(50)]
    metas: list[dict[str, Any]] = [{"brand": "zara"}, {"brand": "zara", "rejected": rejected}]
    opened = [_trips(relay, partial(runs.start, "apify_zara", m)) for m in metas]
    run = runs.start("apify_zara")
    closed = [
        _trips(relay, partial(runs.finish, run, RunResult("success", 10, metadata=m)))
        for m in metas
    ]
    assert opened[0] == opened[1] == 1
    assert closed[0] == closed[1] == 1


def test_a_collect_upsert_costs_the_same_round_trips_for_10_and_1000_products(
    relay: LatencyRelay, relayed: Database
) -> None:
    """One batch of 1,000 drafts takes as many round trips as 10 drafts, new or existing.

    New: BEGIN, the look-up, COPY (two), COMMIT. Existing: the temporary table and the merge
    on top.
    """
    store = PostgresCatalogStore(relayed, batch_size=1000)
    now = datetime.now(UTC)
    small = _trips(relay, lambda: store.upsert_products([draft(n) for n in range(10)], now))
    large = _trips(relay, lambda: store.upsert_products([draft(n) for n in range(100, 1100)], now))
    small_again = _trips(relay, lambda: store.upsert_products([draft(n) for n in range(10)], now))
    again = _trips(relay, lambda: store.upsert_products([draft(n) for n in range(100, 1100)], now))
    assert small == large == 5
    assert small_again == again <= MOST
