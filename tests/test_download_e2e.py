"""The photo downloader end to end: real PostgreSQL, SeaweedFS S3, proxy.py and a local origin.

Products are stored the way the collect stage stores them; the job runs through
``bootstrap`` (or the runner script, for exit codes) with the real adapters, and the tests
look at the rows, the bucket and ``scraper_logs`` afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.fix_origin import Origin, Reply
from tests.fix_proxy import ProxyServer
from tests.fix_s3 import S3Bucket
from tests.photo_samples import (
    HTML_PAGE,
    alpha_png,
    cmyk_jpeg,
    noisy_jpeg,
    png_header_only,
    rgb_jpeg,
    webp,
)
from tests.seed import draft
from undecat.adapters.postgres import Database, PostgresCatalogStore, apply_migrations
from undecat.adapters.postgres.embedded import EmbeddedPostgres
from undecat.bootstrap import bootstrap
from undecat.config import Config
from undecat.domain.keys import original_key
from undecat.domain.models import RunResult
from undecat.errors import DatabaseUnavailableError
from undecat.redact import Secret

ROOT = Path(__file__).resolve().parent.parent
RUNNER = ROOT / "runners" / "photo_downloader.py"


@pytest.fixture
def env(  # noqa: PLR0917  # pytest passes fixtures positionally
    staging_db: Database,
    staging_dsn: str,
    s3_bucket: S3Bucket,
    proxy_server: ProxyServer,
    origin_ca: Path,
    origin_server: Origin,
    tmp_path: Path,
) -> dict[str, str]:
    """The environment of a photo_downloader host pointed at the test servers."""
    return {
        "STAGING_DB_URL": staging_dsn,
        "PROXY_URL": proxy_server.url,
        "PROXY_CA_BUNDLE": str(origin_ca),
        "ALLOWED_PHOTO_HOSTS": ",".join(origin_server.allowed_hosts),
        "ALLOWED_PHOTO_HTTP_HOSTS": ",".join(origin_server.http_hosts),
        "DOWNLOAD_DELAY_MIN": "0",
        "DOWNLOAD_DELAY_MAX": "0",
        "BACKOFF_SCHEDULE": "0.01,0.02,0.03",
        "DOWNLOAD_TIMEOUT": "3",
        "BATCH_SIZE": "10",
        "CONCURRENT_DOWNLOADS": "4",
        "DATA_DIR": str(tmp_path / "data"),
        **s3_bucket.env(),
    }


def add_products(db: Database, photos: Mapping[str, list[str]]) -> None:
    """Store one zara product per external id, with those photo URLs, as collect would."""
    drafts = [
        draft(n, external_id=external_id, original_image_urls=tuple(urls))
        for n, (external_id, urls) in enumerate(photos.items())
    ]
    PostgresCatalogStore(db).upsert_products(drafts, datetime.now(UTC))


def rows(dsn: str) -> dict[str, dict[str, Any]]:
    """The download state of every product, by external id."""
    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        found = conn.execute(
            "SELECT external_id, image_status, image_urls, error_message, download_owner,"
            " download_attempts FROM raw_products ORDER BY id"
        ).fetchall()
    return {row["external_id"]: row for row in found}


def last_run(dsn: str) -> dict[str, Any]:
    """The newest scraper_logs row."""
    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        row = conn.execute("SELECT * FROM scraper_logs ORDER BY id DESC LIMIT 1").fetchone()
    assert row is not None
    return row


def run_job(env: Mapping[str, str], name: str = "download_pending", **overrides: Any) -> RunResult:
    """Run one photo_downloader job in this process, with the real adapters."""
    with bootstrap(Config.from_env(env), **overrides) as jobs:
        return jobs.job("photo_downloader", name).run()


def run_runner(env: Mapping[str, str], job: str = "download_pending") -> subprocess.Popen[str]:
    """Start the runner script as its own process (the way systemd does)."""
    base = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    return subprocess.Popen(
        [sys.executable, str(RUNNER), job],
        env={**base, **env},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stored(bucket: S3Bucket, key: str) -> tuple[bytes, str]:
    """The bytes and Content-Type of one object, read behind the adapter's back."""
    answer = bucket.client.get_object(Bucket=bucket.bucket, Key=key)
    return answer["Body"].read(), answer["ContentType"]


def test_photos_land_in_s3_in_order_and_the_product_is_uploaded(
    env: dict[str, str], staging_dsn: str, staging_db: Database, origin: Origin, s3_bucket: S3Bucket
) -> None:
    """Photos over HTTP and HTTPS through the proxy are stored as 1.jpg..n.jpg, then uploaded."""
    first, second = rgb_jpeg(colour=(10, 20, 30)), rgb_jpeg(colour=(90, 80, 70))
    origin.serve("/a/1.jpg", Reply(body=first, headers={"Content-Type": "image/jpeg"}))
    origin.serve("/a/2.png", Reply(body=alpha_png(), headers={"Content-Type": "image/png"}))
    origin.serve("/a/3.jpg", Reply(body=second))
    urls = [origin.url("/a/1.jpg", tls=True), origin.url("/a/2.png"), origin.url("/a/3.jpg")]
    add_products(staging_db, {"495689099": urls})
    result = run_job(env)
    assert (result.status, result.records_fetched, result.records_new) == ("success", 1, 1)
    row = rows(staging_dsn)["495689099"]
    assert row["image_status"] == "uploaded"
    keys = [original_key("zara", "495689099", n) for n in (1, 2, 3)]
    assert row["image_urls"] == [f"{s3_bucket.endpoint}/{s3_bucket.bucket}/{k}" for k in keys]
    assert stored(s3_bucket, keys[0]) == (first, "image/jpeg")
    assert stored(s3_bucket, keys[2]) == (second, "image/jpeg")
    converted, kind = stored(s3_bucket, keys[1])
    assert converted.startswith(b"\xff\xd8")
    assert kind == "image/jpeg"
    log = last_run(staging_dsn)
    assert log["scraper_name"] == "download_pending"
    assert (log["status"], log["records_fetched"], log["records_new"]) == ("success", 1, 1)


def test_bad_photos_each_fail_only_their_product(
    env: dict[str, str], staging_dsn: str, staging_db: Database, origin: Origin, s3_bucket: S3Bucket
) -> None:
    """Each bad photo fails its own product with a readable reason; convertible ones are stored."""
    elsewhere = origin.url("/x/evil.jpg", host="127.0.0.1")
    cases: dict[str, tuple[Reply | str, str | None]] = {
        "html": (Reply(body=HTML_PAGE, headers={"Content-Type": "text/html"}), "HTML page"),
        "truncated": (Reply(body=noisy_jpeg()[:5000]), "broken image"),
        "empty": (Reply(body=b""), "empty"),
        "bomb": (Reply(body=png_header_only(30_000, 30_000)), "decompression bomb"),
        "missing": (Reply(status=404), "HTTP 404 not found"),
        "redirect": (Reply(status=302, headers={"Location": elsewhere}), "127.0.0.1 is not in"),
        "file": ("file:///etc/passwd", "only http and https"),
        "busy": (Reply(status=503), "HTTP 503 still after backing off 0.01, 0.02, 0.03 s"),
        "cmyk": (Reply(body=cmyk_jpeg()), None),
        "alpha": (Reply(body=alpha_png()), None),
        "webp": (Reply(body=webp()), None),
        "../../etc": (Reply(body=rgb_jpeg()), None),
    }
    photos: dict[str, list[str]] = {}
    origin.serve("/x/later.jpg", Reply(status=429), Reply(body=rgb_jpeg()))
    photos["busy-then-fine"] = [origin.url("/x/later.jpg", tls=True)]
    for n, (external_id, (reply, _)) in enumerate(cases.items()):
        if isinstance(reply, str):
            photos[external_id] = [reply]
        else:
            origin.serve(f"/x/{n}.jpg", reply)
            photos[external_id] = [origin.url(f"/x/{n}.jpg", tls=n % 2 == 0)]
    origin.serve("/x/evil.jpg", Reply(body=rgb_jpeg()))
    add_products(staging_db, photos)
    result = run_job(env)
    found = rows(staging_dsn)
    for external_id, (_, reason) in cases.items():
        row = found[external_id]
        if reason is None:
            assert row["image_status"] == "uploaded", (external_id, row["error_message"])
            data, kind = stored(s3_bucket, original_key("zara", external_id, 1))
            assert data.startswith(b"\xff\xd8")
            assert kind == "image/jpeg"
        else:
            assert row["image_status"] == "error", external_id
            assert reason in row["error_message"], (external_id, row["error_message"])
            assert row["error_message"].startswith("download: photo 1 of 1 (")
    assert origin.hits["/x/evil.jpg"] == 0
    keys = [
        item["Key"]
        for item in s3_bucket.client.list_objects_v2(Bucket=s3_bucket.bucket).get("Contents", [])
    ]
    assert all(k.startswith("originals/zara/") and ".." not in k for k in keys)
    assert "originals/zara/~2E~2E~2F~2E~2E~2Fetc/1.jpg" in keys
    assert found["busy-then-fine"]["image_status"] == "uploaded"
    assert origin.hits["/x/later.jpg"] == 2
    assert (result.status, result.records_new, result.records_errors) == ("partial", 5, 8)


def test_product_slower_than_its_budget_fails(
    env: dict[str, str], staging_dsn: str, staging_db: Database, origin: Origin
) -> None:
    """A product whose photos together take longer than PRODUCT_TIMEOUT fails; others pass."""
    for n in (1, 2, 3):
        origin.serve(f"/slow/{n}.jpg", Reply(body=rgb_jpeg(), delay=0.3))
    origin.serve("/fast/1.jpg", Reply(body=rgb_jpeg()))
    add_products(
        staging_db,
        {
            "slow": [origin.url(f"/slow/{n}.jpg") for n in (1, 2, 3)],
            "fast": [origin.url("/fast/1.jpg")],
        },
    )
    run_job({**env, "PRODUCT_TIMEOUT": "0.5"})
    found = rows(staging_dsn)
    assert found["fast"]["image_status"] == "uploaded"
    assert found["slow"]["image_status"] == "error"
    assert "product's time limit" in found["slow"]["error_message"]


def _assert_released(staging_dsn: str) -> None:
    for external_id, row in rows(staging_dsn).items():
        assert row["image_status"] == "pending", external_id
        assert row["download_owner"] is None, external_id
        assert row["download_attempts"] == 0, external_id
        assert row["error_message"] is None, external_id


def test_proxy_refusing_credentials_fails_the_run_and_marks_nothing(
    env: dict[str, str],
    staging_dsn: str,
    staging_db: Database,
    origin: Origin,
    proxy_server: ProxyServer,
) -> None:
    """A 407 stops the run (exit 2 naming PROXY_URL), releases every claim, hides the password."""
    origin.serve("/p/1.jpg", Reply(body=rgb_jpeg()))
    add_products(staging_db, {str(n): [origin.url("/p/1.jpg", tls=True)] for n in range(5)})
    proc = run_runner({**env, "PROXY_URL": proxy_server.url_with("wrong-s3cret-pass")})
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    assert "407" in out + err  # the run's summary line (stdout: JSON logs)
    assert "PROXY_URL" in out + err
    assert "wrong-s3cret-pass" not in out + err
    _assert_released(staging_dsn)
    log = last_run(staging_dsn)
    assert log["status"] == "failed"
    assert "ProxyCredentialsError" in log["error_message"]
    assert "wrong-s3cret-pass" not in str(log)


def test_proxy_down_fails_the_run_and_marks_nothing(
    env: dict[str, str], staging_dsn: str, staging_db: Database, origin: Origin, proxy_down: str
) -> None:
    """A proxy nobody answers on stops the run; no product is marked error."""
    add_products(staging_db, {str(n): [origin.url("/p/1.jpg")] for n in range(5)})
    result = run_job({**env, "PROXY_URL": proxy_down})
    assert result.status == "failed"
    assert "the proxy is unreachable" in (result.error_message or "")
    _assert_released(staging_dsn)
    assert origin.hits["/p/1.jpg"] == 0


def test_s3_down_fails_the_run_and_marks_nothing(
    env: dict[str, str], staging_dsn: str, staging_db: Database, origin: Origin, s3_down: str
) -> None:
    """An unreachable S3 endpoint stops the run at the first upload; nothing is marked."""
    origin.serve("/p/1.jpg", Reply(body=rgb_jpeg()))
    add_products(staging_db, {str(n): [origin.url("/p/1.jpg")] for n in range(6)})
    result = run_job({**env, "S3_ENDPOINT": s3_down, "CONCURRENT_DOWNLOADS": "1"})
    assert result.status == "failed"
    assert "ObjectStoreUnavailableError" in (result.error_message or "")
    _assert_released(staging_dsn)
    assert origin.hits["/p/1.jpg"] == 1


def test_two_downloader_processes_never_fetch_the_same_product(
    env: dict[str, str], staging_dsn: str, staging_db: Database, origin: Origin
) -> None:
    """Two runner processes on one queue share the work: every photo is fetched exactly once."""
    photos = {}
    for n in range(40):
        origin.serve(f"/c/{n}.jpg", Reply(body=rgb_jpeg(), delay=0.02))
        photos[f"c{n}"] = [origin.url(f"/c/{n}.jpg")]
    add_products(staging_db, photos)
    settings = {**env, "BATCH_SIZE": "4", "CONCURRENT_DOWNLOADS": "3"}
    procs = [run_runner(settings), run_runner(settings)]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    assert all(row["image_status"] == "uploaded" for row in rows(staging_dsn).values())
    assert {origin.hits[f"/c/{n}.jpg"] for n in range(40)} == {1}
    with psycopg.connect(staging_dsn) as conn:
        runs = conn.execute("SELECT records_new FROM scraper_logs").fetchall()
    assert sum(r[0] for r in runs) == 40
    assert len(runs) == 2


@pytest.fixture
def own_postgres() -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL server of this test alone, which it may kill."""
    server = EmbeddedPostgres().start()
    try:
        yield server
    finally:
        server.stop()


def test_database_killed_mid_batch_loses_nothing(
    env: dict[str, str], own_postgres: EmbeddedPostgres, origin: Origin, s3_bucket: S3Bucket
) -> None:
    """Killing PostgreSQL mid-batch fails the run; after restart the leases lapse and all finish."""
    dsn = own_postgres.dsn
    apply_migrations(Secret(dsn), "staging")
    photos: dict[str, list[str]] = {}
    dead = threading.Event()
    for n in range(6):
        # The first two are quick; the rest are answered only once the database is dead.
        origin.serve(f"/k/{n}.jpg", Reply(body=rgb_jpeg(), gate=None if n < 2 else dead))
        photos[f"k{n}"] = [origin.url(f"/k/{n}.jpg")]
    with Database(Secret(dsn), max_size=2) as db:
        add_products(db, photos)
    with psycopg.connect(dsn, autocommit=True) as conn:
        # This server runs with synchronous_commit=off: make the products survive the crash.
        conn.execute("CHECKPOINT")
    settings = {
        **env,
        "STAGING_DB_URL": dsn,
        "CONCURRENT_DOWNLOADS": "2",
        "LEASE_SECONDS": "1",
        "PRODUCT_TIMEOUT": "0.5",  # a lease must outlast a product (2 x PRODUCT_TIMEOUT)
    }

    def kill_when_slow_ones_are_in_flight() -> None:
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if origin.hits["/k/2.jpg"] and origin.hits["/k/3.jpg"]:
                    own_postgres.kill()
                    return
                time.sleep(0.01)
        finally:
            dead.set()

    killer = threading.Thread(target=kill_when_slow_ones_are_in_flight)
    killer.start()
    # A short wait for a connection, so the dead server is noticed in a second, not thirty.
    with (
        Database(Secret(dsn), max_size=3, timeout=0.5) as db,
        pytest.raises(DatabaseUnavailableError),
    ):
        run_job(settings, staging_db=db)
    killer.join()
    own_postgres.start()
    before = {k: r["image_status"] for k, r in rows(dsn).items()}
    # The slow ones were never completed. The quick ones were, but this throw-away server runs
    # with synchronous_commit=off, so a crash may also undo their last commits: either way a
    # row is uploaded or still pending, never error, never half-written.
    assert all(before[f"k{n}"] == "pending" for n in range(2, 6))
    assert set(before.values()) <= {"uploaded", "pending"}
    time.sleep(1.1)  # the dead run's leases (LEASE_SECONDS=1) lapse
    result = run_job(settings)
    assert (result.status, result.records_new) == (
        "success",
        list(before.values()).count("pending"),
    )
    after = rows(dsn)
    assert all(row["image_status"] == "uploaded" for row in after.values())
    for external_id in photos:
        assert stored(s3_bucket, original_key("zara", external_id, 1))[1] == "image/jpeg"


def test_retry_failed_sends_failed_products_back(
    env: dict[str, str], staging_dsn: str, staging_db: Database, origin: Origin
) -> None:
    """retry_failed puts a product whose download failed back to pending, in a run of its own."""
    origin.serve("/r/1.jpg", Reply(status=404))
    add_products(staging_db, {"r1": [origin.url("/r/1.jpg")]})
    run_job(env)
    assert rows(staging_dsn)["r1"]["image_status"] == "error"
    result = run_job(env, "retry_failed")
    assert (result.status, result.records_updated) == ("success", 1)
    assert rows(staging_dsn)["r1"]["image_status"] == "pending"
    assert last_run(staging_dsn)["scraper_name"] == "photo_downloader.retry_failed"


def test_cleanup_temp_clears_old_scratch_files_only(
    env: dict[str, str], staging_dsn: str, tmp_path: Path
) -> None:
    """cleanup_temp removes DATA_DIR/tmp leftovers older than a day and touches nothing else."""
    data = Path(env["DATA_DIR"])
    old, fresh, kept = (
        data / "tmp" / "old.part",
        data / "tmp" / "fresh.part",
        data / "objects" / "x",
    )
    for path in (old, fresh, kept):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    two_days_ago = time.time() - 2 * 86400
    for path in (old, kept):
        os.utime(path, (two_days_ago, two_days_ago))
    result = run_job(env, "cleanup_temp")
    assert result.status == "success"
    assert not old.exists()
    assert fresh.exists()
    assert kept.exists()
    assert last_run(staging_dsn)["scraper_name"] == "photo_downloader.cleanup_temp"
