"""Each runner killed mid-batch (SIGKILL) and stopped mid-batch (SIGTERM), as its own process.

SIGKILL, then a restart once the dead run's leases lapsed: the same end state as an
uninterrupted run, no row lost, no Ximilar record inserted twice (counted at the fake), no
object half-written; the dead run's log row is marked ``abandoned`` by the restart.
SIGTERM: the runner exits within STOP_GRACE_SECONDS with 143, its log row ``interrupted``,
no lease left held; a restart finishes the rest.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from PIL import Image
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from tests.fake_apify import TOKEN as APIFY_TOKEN
from tests.fake_apify import FakeApify, RunPlan
from tests.fix_origin import Origin, Reply
from tests.fix_proxy import ProxyServer
from tests.fix_s3 import S3Bucket
from tests.fix_ximilar import COLLECTION, TOKEN, FakeXimilar, seed_products
from tests.photo_samples import noisy_jpeg, rgb_jpeg
from tests.seed import draft
from tests.strategies import zara_item
from undecat.adapters.objectstore import open_object_store
from undecat.adapters.postgres import Database, PostgresCatalogStore
from undecat.config import Config
from undecat.domain.keys import original_key
from undecat.settings import object_store_settings

ROOT = Path(__file__).resolve().parent.parent
GRACE = 8.0
APIFY_TASK = "z1psVOTyIKFdU5N9n"
SIGNALS = pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill", "term"])


def start(host: str, job: str, env: Mapping[str, str]) -> subprocess.Popen[str]:
    """Start a runner script as its own process (the way systemd does)."""
    base = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    return subprocess.Popen(
        [sys.executable, str(ROOT / "runners" / f"{host}.py"), job],
        env={**base, "STOP_GRACE_SECONDS": str(GRACE), **env},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def query(dsn: str, sql: str) -> list[dict[str, Any]]:
    """Rows of one statement."""
    with psycopg.connect(dsn, row_factory=dict_row, autocommit=True) as conn:
        cur = conn.execute(sql.encode())
        return cur.fetchall() if cur.description else []


def count(dsn: str, where: str) -> int:
    """How many products match ``where``."""
    return int(query(dsn, f"SELECT count(*) AS n FROM raw_products WHERE {where}")[0]["n"])


def wait_until(what: Callable[[], bool], proc: subprocess.Popen[str], timeout: float = 60) -> None:
    """Poll until ``what`` holds while the runner is still running (it is mid-batch then)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if what():
            assert proc.poll() is None, "the runner finished before it could be interrupted"
            return
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(
                f"the runner exited {proc.returncode} early: {(out + err)[-2000:]}"
            )
        time.sleep(0.01)
    proc.kill()
    raise AssertionError(f"timed out; runner said: {proc.communicate()[1][-2000:]}")


def interrupt(proc: subprocess.Popen[str], sig: signal.Signals, dsn: str, stage: str) -> None:
    """Send ``sig``; check how the runner went and leave the database as a restart finds it."""
    sent = time.monotonic()
    proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=GRACE + 5)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    took = time.monotonic() - sent
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
        # The dead run's log row stays 'running'; it is long past its limit for the restart.
        query(dsn, "UPDATE scraper_logs SET started_at = now() - interval '1 day'"
                   " WHERE status = 'running'")  # fmt: skip
        # Its leases lapse (as LEASE_SECONDS would let them).
        query(dsn, f"UPDATE raw_products SET {stage}_lease_until = now() - interval '1 second'"
                   f" WHERE {stage}_owner IS NOT NULL")  # fmt: skip
        return
    assert took < GRACE, f"took {took:.1f}s to stop"
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    (log,) = query(dsn, "SELECT * FROM scraper_logs")
    assert log["status"] == "interrupted", log
    assert log["completed_at"] is not None
    assert "SIGTERM" in log["error_message"]
    assert count(dsn, f"{stage}_owner IS NOT NULL") == 0  # no lease left held


def restart(host: str, job: str, env: Mapping[str, str], dsn: str, sig: signal.Signals) -> None:
    """Run the job again to the end; the earlier run's row is closed one way or the other."""
    proc = start(host, job, env)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    statuses = [r["status"] for r in query(dsn, "SELECT status FROM scraper_logs ORDER BY id")]
    first = "abandoned" if sig == signal.SIGKILL else "interrupted"
    assert statuses == [first, "success"]


def is_jpeg(data: bytes) -> bool:
    """Whether ``data`` is a whole, decodable JPEG."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.format == "JPEG"


# --- photo_downloader download_pending --------------------------------------------------------


@SIGNALS
def test_download_pending_interrupted_mid_batch(  # noqa: PLR0917  # fixtures
    sig: signal.Signals,
    staging_db: Database,
    staging_dsn: str,
    s3_bucket: S3Bucket,
    proxy_server: ProxyServer,
    origin_ca: Path,
    origin: Origin,
    tmp_path: Path,
) -> None:
    """download_pending killed or stopped mid-batch, then restarted: every photo, once, whole."""
    env = {
        "STAGING_DB_URL": staging_dsn,
        "PROXY_URL": proxy_server.url,
        "PROXY_CA_BUNDLE": str(origin_ca),
        "ALLOWED_PHOTO_HOSTS": ",".join(origin.allowed_hosts),
        "ALLOWED_PHOTO_HTTP_HOSTS": ",".join(origin.http_hosts),
        "DOWNLOAD_DELAY_MIN": "0",
        "DOWNLOAD_DELAY_MAX": "0",
        "DOWNLOAD_TIMEOUT": "3",
        "PRODUCT_TIMEOUT": "6",
        "BATCH_SIZE": "4",
        "CONCURRENT_DOWNLOADS": "2",
        "DATA_DIR": str(tmp_path / "data"),
        **s3_bucket.env(),
    }
    drafts = []
    for n in range(12):
        urls = []
        for i in (1, 2):
            origin.serve(f"/s/{n}/{i}.jpg", Reply(body=rgb_jpeg(), delay=0.2))
            urls.append(origin.url(f"/s/{n}/{i}.jpg"))
        drafts.append(draft(n, external_id=f"s{n}", original_image_urls=tuple(urls)))
    PostgresCatalogStore(staging_db).upsert_products(drafts, datetime.now(UTC))
    proc = start("photo_downloader", "download_pending", env)
    wait_until(lambda: count(staging_dsn, "image_status = 'uploaded'") >= 2, proc)
    interrupt(proc, sig, staging_dsn, "download")
    assert count(staging_dsn, "image_status = 'uploaded'") < 12
    assert count(staging_dsn, "image_status = 'error'") == 0
    for n in range(12):  # the origin answers each photo again on a retry
        for i in (1, 2):
            origin.serve(f"/s/{n}/{i}.jpg", Reply(body=rgb_jpeg()))
    restart("photo_downloader", "download_pending", env, staging_dsn, sig)
    rows = query(staging_dsn, "SELECT external_id, image_status, image_urls FROM raw_products")
    assert {r["image_status"] for r in rows} == {"uploaded"}
    assert len(rows) == 12
    for row in rows:
        assert len(row["image_urls"]) == 2
        for i in (1, 2):
            key = original_key("zara", row["external_id"], i)
            body = s3_bucket.client.get_object(Bucket=s3_bucket.bucket, Key=key)["Body"].read()
            assert is_jpeg(body)


# --- collage process_new ----------------------------------------------------------------------


@SIGNALS
def test_collage_process_new_interrupted_mid_batch(
    sig: signal.Signals,
    staging_db: Database,
    staging_dsn: str,
    s3_bucket: S3Bucket,
    tmp_path: Path,
) -> None:
    """process_new killed or stopped mid-batch, then restarted: one whole collage per product."""
    env = {
        "STAGING_DB_URL": staging_dsn,
        "DATA_DIR": str(tmp_path),
        "BATCH_SIZE": "3",
        **s3_bucket.env(),
    }
    store = open_object_store(object_store_settings(Config.from_env(env)))
    photo = noisy_jpeg(900)
    total = 16
    try:
        with psycopg.connect(staging_dsn, autocommit=True) as conn:
            for n in range(total):
                external_id = str(495_700_000 + n)
                urls = [
                    store.put(original_key("zara", external_id, i), photo, "image/jpeg")
                    for i in (1, 2, 3)
                ]
                conn.execute(
                    "INSERT INTO raw_products (source, external_id, brand, name,"
                    " original_image_urls, image_urls, image_status, scraped_at)"
                    " VALUES ('apify_zara', %s, 'zara', 'P', %s, %s, 'uploaded', now())",
                    (external_id, Jsonb([f"https://static.zara.net/{u}" for u in urls]),
                     Jsonb(urls)),
                )  # fmt: skip
    finally:
        store.close()
    del staging_db
    proc = start("collage", "process_new", env)
    wait_until(lambda: count(staging_dsn, "image_status = 'collage_ready'") >= 1, proc)
    interrupt(proc, sig, staging_dsn, "collage")
    assert count(staging_dsn, "image_status = 'collage_ready'") < total
    restart("collage", "process_new", env, staging_dsn, sig)
    rows = query(staging_dsn, "SELECT image_status, collage_url, collage_error FROM raw_products")
    assert {(r["image_status"], r["collage_error"]) for r in rows} == {("collage_ready", None)}
    listing = s3_bucket.client.list_objects_v2(Bucket=s3_bucket.bucket, Prefix="collages/")
    keys = [item["Key"] for item in listing.get("Contents", [])]
    assert len(keys) == total
    for key in keys:
        body = s3_bucket.client.get_object(Bucket=s3_bucket.bucket, Key=key)["Body"].read()
        assert is_jpeg(body)


# --- ximilar_sync ximilar_sync ----------------------------------------------------------------


@SIGNALS
def test_ximilar_sync_interrupted_mid_batch(
    sig: signal.Signals,
    staging_db: Database,
    staging_dsn: str,
    fake_ximilar: FakeXimilar,
    tmp_path: Path,
) -> None:
    """ximilar_sync killed or stopped mid-batch, then restarted: each record inserted once."""
    del staging_db
    seed_products(staging_dsn, 30, photos=2)
    env = {
        "STAGING_DB_URL": staging_dsn,
        "DATA_DIR": str(tmp_path),
        "BATCH_SIZE": "5",
        "XIMILAR_API_URL": fake_ximilar.url,
        "XIMILAR_API_TOKEN": TOKEN,
        "XIMILAR_COLLECTION_ID": COLLECTION,
        "XIMILAR_RATE_LIMIT": "4",
        "S3_PUBLIC_BASE_URL": "http://s3.local/unde-images",  # where seed_products' photos are
    }
    proc = start("ximilar_sync", "ximilar_sync", env)
    wait_until(lambda: fake_ximilar.insert_requests() >= 2, proc)
    interrupt(proc, sig, staging_dsn, "ximilar")
    assert count(staging_dsn, "ximilar_status = 'synced'") < 30
    restart("ximilar_sync", "ximilar_sync", env, staging_dsn, sig)
    assert count(staging_dsn, "ximilar_status = 'synced'") == 30
    assert len(fake_ximilar.stored) == 60
    assert set(fake_ximilar.stored.values()) == {1}  # no record inserted twice
    assert not fake_ximilar.resent_while_held


# --- apify apify_zara (collect) ---------------------------------------------------------------


@SIGNALS
def test_apify_collect_interrupted_mid_stream(
    sig: signal.Signals,
    staging_db: Database,
    staging_dsn: str,
    fake_apify: FakeApify,
    tmp_path: Path,
) -> None:
    """apify_zara killed or stopped mid-dataset, then rerun: every item stored, none delisted."""
    del staging_db
    total = 4000

    def slow_item(n: int) -> dict[str, object]:
        time.sleep(0.001)  # a dataset page takes about a second to serve
        return zara_item(500_000_000 + n)

    info = psycopg.conninfo.conninfo_to_dict(staging_dsn)
    url = (
        f"postgresql://{info.get('user', 'postgres')}:{info.get('password') or ''}"
        f"@{info.get('host', '127.0.0.1')}:{info.get('port', 5432)}/{info['dbname']}"
    )
    env = {
        "STAGING_DB_URL": url,
        "DATA_DIR": str(tmp_path),
        "APIFY_TOKEN": APIFY_TOKEN,
        "APIFY_API_URL": fake_apify.url,
        "APIFY_TASK_ZARA": APIFY_TASK,
    }
    fake_apify.plan(APIFY_TASK, RunPlan(count=total, item_at=slow_item))
    proc = start("apify", "apify_zara", env)
    wait_until(lambda: count(staging_dsn, "TRUE") >= 1000, proc)
    interrupt(proc, sig, staging_dsn, "sync")
    assert count(staging_dsn, "TRUE") < total
    assert count(staging_dsn, "delisted_at IS NOT NULL") == 0
    fake_apify.plan(APIFY_TASK, RunPlan(count=total, item_at=lambda n: zara_item(500_000_000 + n)))
    restart("apify", "apify_zara", env, staging_dsn, sig)
    rows = query(staging_dsn, "SELECT external_id, image_status, delisted_at FROM raw_products")
    assert sorted(int(r["external_id"]) for r in rows) == list(range(500_000_000, 500_004_000))
    assert {(r["image_status"], r["delisted_at"]) for r in rows} == {("pending", None)}


def test_a_job_stuck_past_the_grace_period_exits_at_once(  # noqa: PLR0917  # fixtures
    staging_db: Database,
    staging_dsn: str,
    s3_bucket: S3Bucket,
    proxy_server: ProxyServer,
    origin_ca: Path,
    origin: Origin,
    tmp_path: Path,
) -> None:
    """A photo that never comes holds the job; STOP_GRACE_SECONDS after SIGTERM the process exits.

    The products not begun are released at once; the stuck one's lease lapses by itself and
    the log row is left 'running' (the next start on the host marks it abandoned).
    """
    stuck = threading.Event()
    origin.serve("/stuck/1.jpg", Reply(body=rgb_jpeg(), gate=stuck))
    origin.serve("/quick/1.jpg", Reply(body=rgb_jpeg()))
    store = PostgresCatalogStore(staging_db)
    store.upsert_products(  # first, so it is the one in hand
        [draft(1, external_id="stuck", original_image_urls=(origin.url("/stuck/1.jpg"),))],
        datetime.now(UTC),
    )
    store.upsert_products(
        [
            draft(n, external_id=f"q{n}", original_image_urls=(origin.url("/quick/1.jpg"),))
            for n in (2, 3)
        ],
        datetime.now(UTC),
    )
    env = {
        "STAGING_DB_URL": staging_dsn,
        "PROXY_URL": proxy_server.url,
        "PROXY_CA_BUNDLE": str(origin_ca),
        "ALLOWED_PHOTO_HOSTS": ",".join(origin.allowed_hosts),
        "ALLOWED_PHOTO_HTTP_HOSTS": ",".join(origin.http_hosts),
        "DOWNLOAD_DELAY_MIN": "0",
        "DOWNLOAD_DELAY_MAX": "0",
        "DOWNLOAD_TIMEOUT": "30",
        "CONCURRENT_DOWNLOADS": "1",
        "BATCH_SIZE": "3",
        "DATA_DIR": str(tmp_path / "data"),
        "STOP_GRACE_SECONDS": "1",
        **s3_bucket.env(),
    }
    try:
        proc = start("photo_downloader", "download_pending", env)
        wait_until(lambda: origin.hits["/stuck/1.jpg"] > 0, proc)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
        took = time.monotonic() - sent
    finally:
        stuck.set()
    assert proc.returncode == 128 + signal.SIGTERM
    assert 1.0 <= took < 4.0, took
    assert "STOP_GRACE_SECONDS" in out + err  # log lines go to stdout
    (log,) = query(staging_dsn, "SELECT status FROM scraper_logs")
    assert log["status"] == "running"
    # The products no worker had begun were handed back before the grace ran out.
    held = query(
        staging_dsn, "SELECT external_id FROM raw_products WHERE download_owner IS NOT NULL"
    )
    assert [r["external_id"] for r in held] == ["stuck"]
