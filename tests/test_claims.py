"""Crash-safe claims on real PostgreSQL, directly and through PgBouncer (transaction mode)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest

from tests.fix_pgbouncer import Bouncer
from tests.seed import column_values, seed_rows
from undecat.adapters.postgres import Database, PostgresWorkQueue
from undecat.domain.stages import CollageStored, PhotosStored, Stage, XimilarProgress
from undecat.domain.status import XimilarStatus
from undecat.errors import UndecatError
from undecat.redact import Secret

LONG = timedelta(minutes=10)
TINY = timedelta(milliseconds=1)


@pytest.fixture(params=["direct", "pgbouncer"])
def db(
    request: pytest.FixtureRequest, staging_db: Database, staging_dsn: str
) -> Iterator[Database]:
    """The staging database, reached directly or through PgBouncer."""
    if request.param == "direct":
        yield staging_db
        return
    bouncer: Bouncer = request.getfixturevalue("pgbouncer")
    dbname = str(psycopg.conninfo.conninfo_to_dict(staging_dsn)["dbname"])
    through = Database(Secret(bouncer.dsn_for(dbname)), name="staging-via-bouncer", max_size=10)
    try:
        yield through
    finally:
        through.close()


def _lapse() -> None:
    time.sleep(0.01)  # a TINY lease is over once the next transaction starts


def test_eight_concurrent_claimers_get_each_row_exactly_once(
    db: Database, staging_dsn: str
) -> None:
    """8 workers claiming 200-row batches from 10,000 pending rows never share a row."""
    seed_rows(staging_dsn, 10_000)
    queue = PostgresWorkQueue(db, Stage.DOWNLOAD)
    claimed: list[list[int]] = [[] for _ in range(8)]
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            while batch := queue.claim(f"worker-{n}", 200, LONG):
                claimed[n].extend(c.product.id for c in batch)
        except BaseException as exc:  # noqa: BLE001  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    counts = Counter(i for ids in claimed for i in ids)
    assert len(counts) == 10_000
    assert set(counts.values()) == {1}
    assert sum(1 for ids in claimed if ids) >= 2  # the work really was shared
    owners = column_values(staging_dsn, "download_owner")
    assert all(owner is not None and owner.startswith("worker-") for owner in owners.values())


def test_lapsed_lease_is_reclaimed_and_the_stale_owner_cannot_complete(
    db: Database, staging_dsn: str
) -> None:
    """A crashed worker's rows come back after the lease lapses; its late write is refused."""
    seed_rows(staging_dsn, 5)
    queue = PostgresWorkQueue(db, Stage.DOWNLOAD)
    crashed = queue.claim("crashed", 5, TINY)
    assert len(crashed) == 5
    _lapse()
    taken_over = queue.claim("successor", 5, LONG)
    assert [c.product.id for c in taken_over] == [c.product.id for c in crashed]
    assert all(c.attempt == 2 for c in taken_over)

    assert queue.complete(crashed[0], PhotosStored(("http://s3/old.jpg",))) is False
    assert queue.fail(crashed[1], "late failure") is False
    assert queue.complete(taken_over[0], PhotosStored(("http://s3/new.jpg",))) is True

    statuses = column_values(staging_dsn, "image_status")
    urls = column_values(staging_dsn, "image_urls")
    first, second = crashed[0].product.id, crashed[1].product.id
    assert statuses[first] == "uploaded"
    assert urls[first] == ["http://s3/new.jpg"]
    assert statuses[second] == "pending"  # the stale failure was not written
    assert column_values(staging_dsn, "download_attempts")[first] == 0  # success resets


def test_held_lease_is_not_claimed_again(db: Database, staging_dsn: str) -> None:
    """A row whose lease is still running is invisible to other claimers."""
    seed_rows(staging_dsn, 3)
    queue = PostgresWorkQueue(db, Stage.DOWNLOAD)
    assert len(queue.claim("a", 10, LONG)) == 3
    assert queue.claim("b", 10, LONG) == []


def test_attempt_cap_moves_a_crash_looping_row_to_error(db: Database, staging_dsn: str) -> None:
    """A row whose worker dies on every attempt ends in error after MAX_RETRIES attempts."""
    seed_rows(staging_dsn, 1)
    queue = PostgresWorkQueue(db, Stage.DOWNLOAD, max_attempts=3)
    for attempt in (1, 2, 3):
        (claim,) = queue.claim(f"dies-{attempt}", 1, TINY)
        assert claim.attempt == attempt
        _lapse()
    assert queue.claim("next", 1, LONG) == []
    assert list(column_values(staging_dsn, "image_status").values()) == ["error"]
    (message,) = column_values(staging_dsn, "error_message").values()
    assert "gave up after 3 attempts" in message


def test_release_gives_rows_back_without_counting_the_attempt(
    db: Database, staging_dsn: str
) -> None:
    """An outage releases the batch: the rows are claimable at once and no attempt is spent."""
    seed_rows(staging_dsn, 4)
    queue = PostgresWorkQueue(db, Stage.DOWNLOAD)
    claims = queue.claim("w", 4, LONG)
    assert queue.release(claims) == 4
    assert set(column_values(staging_dsn, "download_attempts").values()) == {0}
    assert set(column_values(staging_dsn, "image_status").values()) == {"pending"}
    again = queue.claim("w2", 4, LONG)
    assert [c.attempt for c in again] == [1, 1, 1, 1]


def test_fail_then_requeue_failed_respects_the_attempt_cap(db: Database, staging_dsn: str) -> None:
    """retry_failed re-queues failed rows with attempts left, and only the failing stage's."""
    seed_rows(staging_dsn, 2)
    seed_rows(staging_dsn, 1, start=100, image_status="uploaded")
    download = PostgresWorkQueue(db, Stage.DOWNLOAD, max_attempts=2, retry_spacing=timedelta(0))
    collage = PostgresWorkQueue(db, Stage.COLLAGE, max_attempts=2, retry_spacing=timedelta(0))
    for claim in download.claim("w", 2, LONG):
        assert download.fail(claim, "HTTP 404 for photo 1")
    (collage_claim,) = collage.claim("c", 1, LONG)
    assert collage.fail(collage_claim, "truncated original 2")

    assert download.requeue_failed() == 2  # the collage failure is not the downloader's
    assert collage.requeue_failed() == 1
    statuses = column_values(staging_dsn, "image_status")
    assert sorted(statuses.values()) == ["pending", "pending", "uploaded"]

    for claim in download.claim("w", 2, LONG):
        assert claim.attempt == 2
        assert download.fail(claim, "HTTP 404 again")
    assert download.requeue_failed() == 0  # attempts used up: stays error
    assert sorted(column_values(staging_dsn, "image_status").values()) == [
        "error",
        "error",
        "uploaded",
    ]


def test_collage_and_ximilar_hold_the_same_row_at_once(db: Database, staging_dsn: str) -> None:
    """Stages have separate leases: both claim one row and both complete it."""
    seed_rows(staging_dsn, 1, image_status="uploaded", index_scope="pilot")
    collage = PostgresWorkQueue(db, Stage.COLLAGE)
    ximilar = PostgresWorkQueue(db, Stage.XIMILAR)
    (c,) = collage.claim("collage-host", 1, LONG)
    (x,) = ximilar.claim("ximilar-host", 1, LONG)
    assert c.product.id == x.product.id
    assert collage.complete(c, CollageStored("http://s3/collages/zara/1.jpg"))
    assert ximilar.complete(x, XimilarProgress(("u1", "u2"), ("id1", "id2"), XimilarStatus.SYNCED))
    row_id = c.product.id
    assert column_values(staging_dsn, "image_status")[row_id] == "collage_ready"
    assert column_values(staging_dsn, "ximilar_status")[row_id] == "synced"
    assert column_values(staging_dsn, "ximilar_record_ids")[row_id] == ["id1", "id2"]


def test_extend_keeps_a_long_batch_leased(db: Database, staging_dsn: str) -> None:
    """A worker extending its leases keeps its rows from being taken over."""
    seed_rows(staging_dsn, 2)
    queue = PostgresWorkQueue(db, Stage.DOWNLOAD)
    claims = queue.claim("slow", 2, TINY)
    assert queue.extend(claims, LONG) == 2
    _lapse()
    assert queue.claim("other", 2, LONG) == []


def test_an_outcome_of_another_stage_is_refused(db: Database, staging_dsn: str) -> None:
    """The download queue cannot be completed with a collage outcome."""
    seed_rows(staging_dsn, 1)
    queue = PostgresWorkQueue(db, Stage.DOWNLOAD)
    (claim,) = queue.claim("w", 1, LONG)
    with pytest.raises(UndecatError, match="not an outcome of this stage"):
        queue.complete(claim, CollageStored("http://s3/x.jpg"))


def test_non_pilot_and_delisted_rows_are_not_claimed_for_ximilar(
    db: Database, staging_dsn: str
) -> None:
    """Ximilar claims only pilot rows with photos, and delisted rows only to remove records."""
    seed_rows(staging_dsn, 1, start=1, image_status="uploaded", index_scope="off")
    seed_rows(staging_dsn, 1, start=2, image_status="uploaded", index_scope="pgvector")
    seed_rows(staging_dsn, 1, start=3, image_status="pending", index_scope="pilot")
    seed_rows(staging_dsn, 1, start=4, image_status="collage_ready", index_scope="pilot")
    with psycopg.connect(staging_dsn, autocommit=True) as conn:
        conn.execute(
            "UPDATE raw_products SET delisted_at = now(), ximilar_record_ids = '[\"r1\"]'"
            " WHERE external_id = '500000001'"
        )
    queue = PostgresWorkQueue(db, Stage.XIMILAR)
    claimed = sorted(c.product.external_id for c in queue.claim("x", 10, LONG))
    assert claimed == ["500000001", "500000004"]


_CLAIM_AND_HANG = """
import sys, time
from datetime import timedelta
from undecat.adapters.postgres import Database, PostgresWorkQueue
from undecat.domain.stages import Stage
from undecat.redact import Secret
db = Database(Secret(sys.argv[1]))
claims = PostgresWorkQueue(db, Stage.DOWNLOAD).claim("doomed-worker", 50, timedelta(seconds=1))
print(len(claims), flush=True)
time.sleep(600)  # killed long before this
"""


def test_a_killed_worker_process_loses_its_rows_to_the_next_worker(
    db: Database, staging_dsn: str
) -> None:
    """SIGKILL a process holding leases: after the lease lapses another worker gets every row."""
    seed_rows(staging_dsn, 50)
    worker = subprocess.Popen(
        [sys.executable, "-c", _CLAIM_AND_HANG, staging_dsn], stdout=subprocess.PIPE, text=True
    )
    try:
        assert worker.stdout is not None
        assert worker.stdout.readline().strip() == "50"
        queue = PostgresWorkQueue(db, Stage.DOWNLOAD)
        assert queue.claim("successor", 50, LONG) == []  # still leased
        worker.kill()
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)
        if worker.stdout is not None:
            worker.stdout.close()
    time.sleep(1.1)  # the dead worker's one-second lease lapses
    taken = queue.claim("successor", 50, LONG)
    assert len(taken) == 50
    assert {c.attempt for c in taken} == {2}
    assert set(column_values(staging_dsn, "download_owner").values()) == {"successor"}
