"""Issue 18 on real PostgreSQL: fair claims, stage-owned errors, nothing stuck, graceful stop."""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.download_fakes import FakeFetcher, FakePreparer, download_queue
from tests.fakes import FakeClock, MemoryQueue, MemoryStore, product
from tests.fix_db import PgServer
from tests.fix_ximilar import FakeXimilar, client_for, execute, seed_products
from tests.test_roles import PASSWORD, ROLES
from undecat.adapters.postgres import (
    Database,
    PostgresRunRecorder,
    PostgresWorkQueue,
    apply_migrations,
)
from undecat.adapters.postgres.migrate import sql_root
from undecat.bootstrap import check_lease_covers_batch
from undecat.cli import main
from undecat.config import Config
from undecat.domain.models import RunResult
from undecat.domain.stages import CollageStored, ProductionDone, Stage
from undecat.domain.status import ImageStatus, RunStatus, SyncStatus
from undecat.errors import ConfigError
from undecat.jobs.collage import CollageStage
from undecat.jobs.download import DownloadSettings, PhotoDownloader
from undecat.jobs.runlog import Job, StopToken
from undecat.jobs.ximilar import ximilar_retry, ximilar_sync
from undecat.redact import Secret

LEASE = timedelta(minutes=10)


def _rows(dsn: str, where: str = "TRUE") -> list[dict[str, Any]]:
    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        return conn.execute(
            f"SELECT * FROM raw_products WHERE {where} ORDER BY id".encode()
        ).fetchall()


# --- 1. fair claims ---------------------------------------------------------------------------


def test_partial_ximilar_rows_do_not_starve_the_rest(
    staging_db: Database, staging_dsn: str, fake_ximilar: FakeXimilar, ximilar_clock: FakeClock
) -> None:
    """55 rows that end partial, batch 50: every row is tried within ceil(55/50) runs.

    A partial row is not sent again in the next run (nor the same one); a raised target
    makes it claimable at once, and one that never completes ends failed after its attempts.
    """
    ids = seed_products(staging_dsn, 55, photos=2)
    fake_ximilar.silently_drop = lambda rid: rid.split("-")[2] == "1"  # never confirms photo 2
    queue = PostgresWorkQueue(staging_db, Stage.XIMILAR, retry_spacing=timedelta(0))
    client = client_for(fake_ximilar, ximilar_clock)
    try:
        runs = [
            ximilar_sync(queue, client, owner="x", lease=LEASE, batch_size=50) for _ in range(2)
        ]
    finally:
        client.close()
    assert len(fake_ximilar.stored) == 55  # photo 1 of every row
    assert set(fake_ximilar.stored.values()) == {1}
    assert runs[0].records_fetched == 55
    assert runs[1].records_fetched == 0
    rows = _rows(staging_dsn)
    assert {(r["ximilar_status"], r["ximilar_attempts"]) for r in rows} == {("partial", 1)}
    assert queue.counts().waiting == 55
    execute(staging_dsn, "UPDATE raw_products SET ximilar_target_count = 3 WHERE id = %(i)s",
            {"i": ids[0]})  # fmt: skip
    assert [c.product.id for c in queue.claim("x", 50, LEASE)] == [ids[0]]
    # Attempts count across partial runs: a row never confirmed ends failed with its reason.
    execute(staging_dsn, "UPDATE raw_products SET ximilar_next_at = NULL, ximilar_attempts = 3,"
            " ximilar_owner = NULL, ximilar_lease_until = NULL")  # fmt: skip
    assert queue.claim("x", 50, LEASE) == []
    assert {r["ximilar_status"] for r in _rows(staging_dsn)} == {"error"}
    assert queue.counts().exhausted == 55


# --- 2. fenced completion ---------------------------------------------------------------------


def test_a_lease_shorter_than_a_product_can_take_is_refused_at_start() -> None:
    """LEASE_SECONDS below 2 x PRODUCT_TIMEOUT is a ConfigError naming the variables."""
    config = Config.from_env({"LEASE_SECONDS": "100", "PRODUCT_TIMEOUT": "120"})
    with pytest.raises(ConfigError, match=r"LEASE_SECONDS \(100\).*PRODUCT_TIMEOUT"):
        check_lease_covers_batch(config)
    check_lease_covers_batch(Config.from_env({}))  # the defaults pass


def test_runner_with_a_too_short_lease_exits_2_before_any_run_log(
    staging_db: Database, staging_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """download_pending with LEASE_SECONDS < 2 x PRODUCT_TIMEOUT exits 2 and logs no run."""
    from undecat.cli import run_host  # noqa: PLC0415

    monkeypatch.setenv("STAGING_DB_URL", staging_dsn)
    monkeypatch.setenv("LEASE_SECONDS", "10")
    monkeypatch.setenv("PRODUCT_TIMEOUT", "120")
    assert run_host("photo_downloader", ["download_pending"]) == 2
    with psycopg.connect(staging_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM scraper_logs").fetchone() == (0,)


# --- 5. errors belong to their stage ----------------------------------------------------------


def test_collage_failure_keeps_the_photos_in_ximilars_queue(
    staging_db: Database, staging_dsn: str
) -> None:
    """A failed collage leaves image_status 'uploaded' (collage_error set); Ximilar claims it."""
    (row_id,) = seed_products(staging_dsn, 1, photos=2)
    collage = PostgresWorkQueue(staging_db, Stage.COLLAGE)
    ximilar = PostgresWorkQueue(staging_db, Stage.XIMILAR)
    (claim,) = collage.claim("c", 1, LEASE)
    assert collage.fail(claim, "collage: photo 2 is not an image")
    (row,) = _rows(staging_dsn)
    assert (row["image_status"], row["collage_error"], row["error_message"]) == (
        "uploaded",
        "collage: photo 2 is not an image",
        "collage: photo 2 is not an image",
    )
    assert [c.product.id for c in ximilar.claim("x", 5, LEASE)] == [row_id]
    assert collage.claim("c", 1, LEASE) == []  # not retried before retry_failed


def test_collage_completion_does_not_clear_ximilars_reason(
    staging_db: Database, staging_dsn: str
) -> None:
    """Ximilar's error survives a collage completion; error_message keeps showing it."""
    seed_products(staging_dsn, 1, photos=2)
    collage = PostgresWorkQueue(staging_db, Stage.COLLAGE)
    ximilar = PostgresWorkQueue(staging_db, Stage.XIMILAR)
    (x,) = ximilar.claim("x", 1, LEASE)
    (c,) = collage.claim("c", 1, LEASE)
    assert ximilar.fail(x, "ximilar: photo 1 was refused: bad url")
    assert collage.complete(c, CollageStored("https://s3.test/c.jpg"))
    (row,) = _rows(staging_dsn)
    assert row["image_status"] == "collage_ready"
    assert row["ximilar_status"] == "error"
    assert row["ximilar_error"] == row["error_message"] == "ximilar: photo 1 was refused: bad url"
    assert row["collage_error"] is None


def test_a_stage_success_clears_only_its_own_reason(staging_db: Database, staging_dsn: str) -> None:
    """A collage retried to success clears collage_error; error_message falls back to Ximilar's."""
    seed_products(staging_dsn, 1, photos=2)
    collage = PostgresWorkQueue(staging_db, Stage.COLLAGE, retry_spacing=timedelta(0))
    ximilar = PostgresWorkQueue(staging_db, Stage.XIMILAR)
    (x,) = ximilar.claim("x", 1, LEASE)
    assert ximilar.fail(x, "ximilar: refused")
    (c,) = collage.claim("c", 1, LEASE)
    assert collage.fail(c, "collage: broken")
    assert collage.requeue_failed() == 1
    (c,) = collage.claim("c", 1, LEASE)
    assert collage.complete(c, CollageStored("https://s3.test/c.jpg"))
    (row,) = _rows(staging_dsn)
    assert (row["collage_error"], row["ximilar_error"], row["error_message"]) == (
        None,
        "ximilar: refused",
        "ximilar: refused",
    )


def test_migration_0007_moves_existing_errors_to_their_stages(
    pg_server: PgServer, tmp_path: Path
) -> None:
    """Rows failed before 0007 get their stage's reason; a failed collage's photos are uploaded."""
    early = tmp_path / "sql"
    (early / "staging").mkdir(parents=True)
    for path in sorted((sql_root() / "staging").glob("000[1-6]_*.sql")):
        shutil.copy(path, early / "staging" / path.name)
    name = pg_server.create_database("t_mig0007")
    try:
        dsn = pg_server.dsn_for(name)
        apply_migrations(Secret(dsn), "staging", early)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO raw_products (source, external_id, brand, original_image_urls,"
                " image_urls, image_status, collage_attempts, download_attempts,"
                " ximilar_status, error_message, scraped_at) VALUES"
                " ('apify_zara', 'c', 'zara', '[\"a\"]', '[\"s3/a\"]', 'error', 1, 0,"
                "  'pending', 'collage: broken', now()),"
                " ('apify_zara', 'd', 'zara', '[\"a\"]', NULL, 'error', 0, 2,"
                "  'pending', 'download: 404', now()),"
                " ('apify_zara', 'x', 'zara', '[\"a\"]', '[\"s3/a\"]', 'uploaded', 0, 0,"
                "  'error', 'ximilar: refused', now())"
            )
        apply_migrations(Secret(dsn), "staging")
        rows = {r["external_id"]: r for r in _rows(dsn)}
        assert (rows["c"]["image_status"], rows["c"]["collage_error"]) == (
            "uploaded",
            "collage: broken",
        )
        assert (rows["d"]["image_status"], rows["d"]["download_error"]) == (
            "error",
            "download: 404",
        )
        assert rows["x"]["ximilar_error"] == "ximilar: refused"
        assert rows["c"]["download_error"] is None
    finally:
        pg_server.drop_database(name)


# --- 6. nothing stuck -------------------------------------------------------------------------


def test_delisted_row_whose_delete_failed_is_retried(
    staging_db: Database, staging_dsn: str, fake_ximilar: FakeXimilar, ximilar_clock: FakeClock
) -> None:
    """A delisted product whose record deletion failed is retried by ximilar_retry, and removed."""
    (row_id,) = seed_products(staging_dsn, 1, photos=1)
    fake_ximilar.records["rec-1"] = {"_id": "rec-1"}
    execute(
        staging_dsn,
        "UPDATE raw_products SET ximilar_record_ids = '[\"rec-1\"]', ximilar_status = 'synced'",
    )
    execute(staging_dsn, "UPDATE raw_products SET delisted_at = now()")
    queue = PostgresWorkQueue(staging_db, Stage.XIMILAR, retry_spacing=timedelta(0))
    (claim,) = queue.claim("x", 5, LEASE)
    assert claim.product.id == row_id
    assert queue.fail(claim, "ximilar: stale record rec-1 could not be deleted: 500")
    client = client_for(fake_ximilar, ximilar_clock)
    try:
        result = ximilar_retry(queue, client, owner="x", lease=LEASE, batch_size=10)
    finally:
        client.close()
    assert result.metadata["requeued"] == 1
    assert "rec-1" not in fake_ximilar.records
    (row,) = _rows(staging_dsn)
    assert (row["ximilar_record_ids"], row["ximilar_error"]) == ([], None)


def test_requeue_command_puts_given_up_rows_back(
    staging_db: Database,
    staging_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`undecat requeue --stage collage [--brand] [--reason] [--dry-run]` prints how many."""
    seed_products(staging_dsn, 3, photos=1)
    seed_products(staging_dsn, 1, photos=1, start=10, brand="bershka")
    queue = PostgresWorkQueue(staging_db, Stage.COLLAGE, max_attempts=1)
    claims = queue.claim("c", 10, LEASE)
    for claim in claims:
        reason = "collage: too large" if claim.product.id % 2 else "collage: not an image"
        assert queue.fail(claim, reason)
    monkeypatch.setenv("STAGING_DB_URL", staging_dsn)
    monkeypatch.setenv("MAX_RETRIES", "1")
    assert main(["status"]) == 0
    status = capsys.readouterr().out
    assert "exhausted" in status
    assert any(
        line.split()[:6] == ["collage", "0", "0", "0", "0", "4"] for line in status.splitlines()
    )
    assert main(["requeue", "--stage", "collage", "--reason", "TOO LARGE", "--dry-run"]) == 0
    assert capsys.readouterr().out.strip() == "collage: would requeue 2 product(s)"
    assert main(["requeue", "--stage", "collage", "--brand", "bershka"]) == 0
    assert capsys.readouterr().out.strip() == "collage: requeued 1 product(s)"
    assert main(["requeue", "--stage", "collage"]) == 0
    assert capsys.readouterr().out.strip() == "collage: requeued 3 product(s)"
    assert len(queue.claim("c", 10, LEASE)) == 4
    with pytest.raises(SystemExit, match="2"):
        main(["requeue", "--stage", "nope"])


def test_status_shows_leased_stale_and_exhausted_per_stage(
    staging_db: Database,
    staging_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`undecat status` counts live leases, lapsed (stale) leases and given-up rows per stage."""
    seed_products(staging_dsn, 3, photos=1, image_status="pending")
    queue = PostgresWorkQueue(staging_db, Stage.DOWNLOAD)
    queue.claim("d", 2, LEASE)
    execute(
        staging_dsn,
        "UPDATE raw_products SET download_lease_until = now() - interval '1 s'"
        " WHERE id = (SELECT min(id) FROM raw_products)",
    )
    monkeypatch.setenv("STAGING_DB_URL", staging_dsn)
    assert main(["status"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.startswith("stage"))
    assert header.split() == [
        "stage",
        "claimable",
        "leased",
        "stale",
        "failed",
        "exhausted",
        "waiting",
    ]
    download = next(line for line in lines if line.startswith("download "))
    assert download.split() == ["download", "1", "1", "1", "0", "0", "0"]


# --- 7. graceful stop -------------------------------------------------------------------------


def test_stopped_run_is_logged_interrupted_with_its_counts(
    staging_db: Database, staging_dsn: str
) -> None:
    """A run that returns after a stop request is closed 'interrupted', keeping its counts."""
    stop = StopToken()

    def work() -> RunResult:
        stop.request("SIGTERM")
        return RunResult(status=RunStatus.SUCCESS, records_fetched=7, records_new=3)

    result = Job("process_new", work, PostgresRunRecorder(staging_db), stop=stop).run()
    assert result.status == RunStatus.INTERRUPTED
    (log,) = PostgresRunRecorder(staging_db).recent("process_new")
    assert (log.status, log.records_fetched, log.records_new) == ("interrupted", 7, 3)
    assert log.completed_at is not None
    assert "SIGTERM" in (log.error_message or "")


def test_a_new_run_marks_its_hosts_dead_runs_abandoned(
    staging_db: Database, staging_dsn: str
) -> None:
    """Only this host's 'running' rows of the same job past the time limit become abandoned."""
    execute(
        staging_dsn,
        "INSERT INTO scraper_logs (scraper_name, status, started_at, metadata) VALUES"
        " ('process_new', 'running', now() - interval '2 hours', '{\"host\": \"h1\"}'),"
        " ('process_new', 'running', now() - interval '2 hours', '{\"host\": \"h2\"}'),"
        " ('process_new', 'running', now() - interval '1 minute', '{\"host\": \"h1\"}'),"
        " ('ximilar_sync', 'running', now() - interval '2 hours', '{\"host\": \"h1\"}')",
    )
    recorder = PostgresRunRecorder(staging_db, stale_after=timedelta(hours=1))
    run = recorder.start("process_new", {"host": "h1", "pid": 1})
    with psycopg.connect(staging_dsn) as conn:
        statuses = conn.execute("SELECT id, status FROM scraper_logs ORDER BY id").fetchall()
    assert statuses == [
        (1, "abandoned"),
        (2, "running"),
        (3, "running"),
        (4, "running"),
        (run.id, "running"),
    ]


def test_collage_stop_finishes_the_item_in_hand_and_releases_the_rest() -> None:
    """On a stop the collage in hand is stored, the batch's other claims are released untouched."""
    clock, store = FakeClock(), MemoryStore()
    products = []
    for n in (1, 2, 3):
        url = store.put(f"originals/zara/{n}/1.jpg", b"photo", "image/jpeg")
        products.append(product(n, image_status=ImageStatus.UPLOADED, image_urls=(url,)))
    queue = MemoryQueue(Stage.COLLAGE, products, clock=clock)
    stop = StopToken()

    def build(photos: Sequence[bytes]) -> bytes:
        stop.request("SIGTERM")
        return b"collage"

    stage = CollageStage(queue, store, build, clock, owner="c", batch_size=3, stop=stop)
    result = stage.process_new()
    assert [queue.status(n) for n in (1, 2, 3)] == ["collage_ready", "uploaded", "uploaded"]
    assert all(queue.rows[n].owner is None and queue.rows[n].attempts == 0 for n in (2, 3))
    assert result.records_updated == 1


def test_download_stop_abandons_the_product_in_hand_between_photos() -> None:
    """On a stop the downloader starts nothing more and releases its product between two photos."""
    queue = download_queue([product(n) for n in range(1, 5)])
    stop = StopToken()

    def first_photo() -> bytes:
        stop.request("SIGINT")
        return b"JPEG"

    fetcher = FakeFetcher({"https://cdn/1/1.jpg": first_photo})
    job = PhotoDownloader(
        queue=queue,
        fetcher=fetcher,
        preparer=FakePreparer(),
        store=MemoryStore(),
        clock=FakeClock(),
        settings=DownloadSettings(owner="d", lease=LEASE, batch_size=4, concurrency=1),
        stop=stop,
    )
    job.download_pending()
    assert fetcher.fetched == ["https://cdn/1/1.jpg"]
    assert all(queue.status(n) == "pending" for n in range(1, 5))
    assert all(row.owner is None and row.attempts == 0 for row in queue.rows.values())


# --- the roles may do all of it ------------------------------------------------------------------

_STAGE_ROLES = {
    Stage.DOWNLOAD: ("downloader", "pending"),
    Stage.COLLAGE: ("collage", "uploaded"),
    Stage.XIMILAR: ("ximilar", "uploaded"),
    Stage.SYNC: ("scraper", "uploaded"),
}


@pytest.fixture
def role_db(
    pg_server: PgServer, staging_db: Database, staging_dsn: str, request: pytest.FixtureRequest
) -> Iterator[Database]:
    """A pool on the staging database as the runner role ``request.param``."""
    role = str(request.param)
    assert role in ROLES
    with psycopg.connect(pg_server.admin_dsn, autocommit=True) as conn:
        conn.execute(
            psycopg.sql.SQL("ALTER ROLE {} WITH LOGIN PASSWORD {}").format(
                psycopg.sql.Identifier(role), psycopg.sql.Literal(PASSWORD)
            )
        )
    dbname = str(psycopg.conninfo.conninfo_to_dict(staging_dsn)["dbname"])
    db = Database(Secret(pg_server.dsn_for(dbname, user=role, password=PASSWORD)), max_size=2)
    try:
        yield db
    finally:
        db.close()


@pytest.mark.parametrize(
    ("stage", "role_db"),
    [(stage, role) for stage, (role, _) in _STAGE_ROLES.items()],
    ids=[stage.value for stage in _STAGE_ROLES],
    indirect=["role_db"],
)
def test_each_hosts_role_can_fence_fail_requeue_and_log(
    stage: Stage, role_db: Database, staging_dsn: str
) -> None:
    """Each host's role writes its stage's claim token and reason, requeues, and abandons runs."""
    role, ready = _STAGE_ROLES[stage]
    seed_products(staging_dsn, 2, photos=1, image_status=ready)
    queue = PostgresWorkQueue(role_db, stage, retry_spacing=timedelta(0))
    first, second = queue.claim("w", 2, LEASE)
    assert queue.extend([first], LEASE) == 1
    assert queue.fail(first, f"{stage.value}: bad")
    assert queue.release([second]) == 1
    assert queue.requeue_failed() == 1
    claims = queue.claim("w", 2, LEASE)
    assert queue.release(claims) == 2
    assert queue.requeue(dry_run=True) == 0
    assert queue.counts().claimable == 2
    execute(
        staging_dsn,
        # The role's own earlier run (a run log belongs to its writer: 0009's row security).
        "INSERT INTO scraper_logs (scraper_name, status, started_at, metadata, db_role)"
        f" VALUES ('job', 'running', now() - interval '2 hours', '{{\"host\": \"h\"}}', '{role}')",
    )
    recorder = PostgresRunRecorder(role_db, stale_after=timedelta(hours=1))
    recorder.start("job", {"host": "h"})
    with psycopg.connect(staging_dsn) as conn:
        assert conn.execute("SELECT status FROM scraper_logs ORDER BY id").fetchall() == [
            ("abandoned",),
            ("running",),
        ]


def test_a_skipped_sync_keeps_its_reason_but_is_not_requeued(
    staging_db: Database, staging_dsn: str
) -> None:
    """A production-sync skip is a result, not a failure: requeue and the counts leave it alone."""
    seed_products(staging_dsn, 1, photos=1)
    queue = PostgresWorkQueue(staging_db, Stage.SYNC)
    (claim,) = queue.claim("s", 1, LEASE)
    assert queue.complete(claim, ProductionDone(SyncStatus.SKIPPED, "no price"))
    (row,) = _rows(staging_dsn)
    assert (row["sync_status"], row["sync_error"], row["error_message"]) == (
        "skipped",
        "no price",
        "no price",
    )
    assert queue.requeue(dry_run=True) == 0
    assert queue.requeue_failed() == 0
    assert (queue.counts().failed, queue.counts().exhausted) == (0, 0)


def test_a_signal_becomes_a_stop_request_and_handlers_are_restored() -> None:
    """SIGTERM inside the runner's context sets the stop token; leaving it restores the handler.

    A job that returned in time cancels the hard exit: the process lives past the grace.
    """
    from undecat.cli import _stop_on_signals  # noqa: PLC0415  # the runner's own

    before = signal.getsignal(signal.SIGTERM)
    stop = StopToken()
    with _stop_on_signals(stop, grace=0.2) as received:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.wait(5)
    assert (stop.reason, received) == ("SIGTERM", [signal.SIGTERM])
    assert signal.getsignal(signal.SIGTERM) == before
    time.sleep(0.4)  # past the grace: still here
