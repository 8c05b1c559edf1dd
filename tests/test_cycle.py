"""The whole cycle end to end: every job of every host as its own runner process.

Schedule order (the weekly collect, then the stages the timers run after it), against the
real staging and production PostgreSQL, the S3 server, the proxy and the local fakes of
Apify, the photo origin, Ximilar and Zara. The end state is checked exactly: the products,
stores and stock in production, the originals and collages in the bucket, each Ximilar
record inserted once. Then the same cycle with one runner killed (SIGKILL) mid-batch and
restarted: the same end state, nothing lost, nothing duplicated.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.fake_apify import TOKEN as APIFY_TOKEN
from tests.fake_apify import FakeApify, RunPlan
from tests.fix_origin import Origin, Reply
from tests.fix_proxy import ProxyServer
from tests.fix_s3 import S3Bucket
from tests.fix_ximilar import COLLECTION, TOKEN, FakeXimilar
from tests.fix_zara import ZaraServer, store_entry
from tests.photo_samples import rgb_jpeg
from tests.strategies import zara_item
from tests.test_signals import ROOT, count, is_jpeg, query, start, wait_until
from undecat.adapters.postgres import Database
from undecat.domain.keys import original_key

APIFY_TASK = "z1psVOTyIKFdU5N9n"
PRODUCTS = 6
STORES = (1300, 1301)
#: Photos of a pilot product sent to Ximilar (the default ``ximilar_target_count``).
XIMILAR_TARGET = 2
#: Every job of every host, in the order the timers run them in a week's cycle.
CYCLE: tuple[tuple[str, str], ...] = (
    ("apify", "apify_zara"),
    ("undecat", "pilot"),  # the operator's choice of the Ximilar pilot (``undecat pilot``)
    ("photo_downloader", "download_pending"),
    ("photo_downloader", "retry_failed"),
    ("photo_downloader", "cleanup_temp"),
    ("collage", "process_new"),
    ("collage", "retry_failed"),
    ("collage", "cleanup_temp"),
    ("collage", "retention"),
    ("ximilar_sync", "ximilar_sync"),
    ("ximilar_sync", "ximilar_retry"),
    ("scraper", "stores_refresh"),
    ("scraper", "availability_poll"),
    ("scraper", "sync_to_production"),
    ("scraper", "availability_retention"),
)


def external_id(n: int) -> str:
    """The id of the ``n``-th product (colour product ids are the id + 1 + colour)."""
    return str(500_000_000 + 10 * n)


def photos(n: int) -> int:
    """How many photos the ``n``-th product has (2 or 3, over 1 or 2 colours)."""
    return 2 + n % 2


def item(origin: Origin, n: int) -> dict[str, Any]:
    """The ``n``-th product of the export, its photos on the local origin."""
    base = zara_item(int(external_id(n)))
    colour = base["colorsSizesImagesJSON"][0]  # type: ignore[index]
    colours = []
    for c in range(1 + n % 2):
        urls = [origin.url(f"/cycle/{n}/{c}/{i}.jpg") for i in range(photos(n) - c)]
        colours.append({**colour, "id": f"80{c}", "productId": int(external_id(n)) + 1 + c,
                        "xmedia": urls})  # fmt: skip
    return {**base, "colorsSizesImagesJSON": colours}


@pytest.fixture
def cycle_env(  # noqa: PLR0917  # one fixture per service of the cycle
    staging_db: Database,
    staging_dsn: str,
    production_dsn_empty: str,
    s3_bucket: S3Bucket,
    proxy_server: ProxyServer,
    origin_ca: Path,
    origin: Origin,
    fake_apify: FakeApify,
    fake_ximilar: FakeXimilar,
    zara: ZaraServer,
    tmp_path: Path,
) -> dict[str, str]:
    """Every service up and scripted; the environment all the hosts' runners share."""
    del staging_db  # emptied
    fake_apify.plan(APIFY_TASK, RunPlan(count=PRODUCTS, item_at=lambda n: item(origin, n)))
    origin.serve_default(Reply(body=rgb_jpeg(), delay=0.1))  # room to kill mid-batch
    zara.fake.stores = [store_entry(s) for s in STORES]
    for n in range(PRODUCTS):
        for c in range(1 + n % 2):
            zara.fake.stock[str(int(external_id(n)) + 1 + c)] = {
                store: [("S", (n + store) % 2), ("M", 3)] for store in STORES
            }
    return {
        "STAGING_DB_URL": staging_dsn,
        "PRODUCTION_DB_URL": production_dsn_empty,
        "DATA_DIR": str(tmp_path / "data"),
        "BATCH_SIZE": "2",
        # apify
        "APIFY_TOKEN": APIFY_TOKEN,
        "APIFY_API_URL": fake_apify.url,
        "APIFY_TASK_ZARA": APIFY_TASK,
        # photo_downloader
        "PROXY_URL": proxy_server.url,
        "PROXY_CA_BUNDLE": str(origin_ca),
        "ALLOWED_PHOTO_HOSTS": ",".join(origin.allowed_hosts),
        "ALLOWED_PHOTO_HTTP_HOSTS": ",".join(origin.http_hosts),
        "DOWNLOAD_DELAY_MIN": "0",
        "DOWNLOAD_DELAY_MAX": "0",
        "CONCURRENT_DOWNLOADS": "2",
        # ximilar_sync
        "XIMILAR_API_URL": fake_ximilar.url,
        "XIMILAR_API_TOKEN": TOKEN,
        "XIMILAR_COLLECTION_ID": COLLECTION,
        "XIMILAR_RATE_LIMIT": "8",  # a batch takes a moment: room to kill the runner mid-run
        # scraper
        "ZARA_BASE_URL": zara.base_url(),
        "ZARA_USER_AGENT": "ZaraApp/cycle-test",
        "AVAILABILITY_DELAY_MIN": "0",
        "AVAILABILITY_DELAY_MAX": "0",
        **s3_bucket.env(S3_PUBLIC_BASE_URL=f"{s3_bucket.endpoint}/{s3_bucket.bucket}"),
    }


def launch(host: str, job: str, env: Mapping[str, str]) -> subprocess.Popen[str]:
    """Start one job: a runner script, or the operator's ``undecat pilot`` for the pilot."""
    if host != "undecat":
        return start(host, job, env)
    return subprocess.Popen(
        [sys.executable, "-m", "undecat.cli", "pilot", "--brand", "zara", "--sample", "100"],
        env={"PATH": "/usr/bin:/bin", **env},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str], what: str) -> None:
    """Wait for a runner; it must succeed."""
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, f"{what} exited {proc.returncode}: {(out + err)[-3000:]}"


def end_state(env: Mapping[str, str], s3: S3Bucket, ximilar: FakeXimilar) -> dict[str, Any]:
    """What the cycle leaves behind, in a form two cycles can be compared by."""
    production = env["PRODUCTION_DB_URL"]
    listing = s3.client.list_objects_v2(Bucket=s3.bucket)
    keys = sorted(o["Key"] for o in listing.get("Contents", []))
    for key in keys:
        assert is_jpeg(s3.client.get_object(Bucket=s3.bucket, Key=key)["Body"].read()), key
    return {
        "products": query(
            production,
            "SELECT external_id, name, is_active, collage_url, image_urls, index_scope,"
            " jsonb_array_length(ximilar_record_ids) AS records"
            " FROM catalog.products ORDER BY external_id",
        ),
        "stores": query(production, "SELECT store_id FROM catalog.stores ORDER BY 1"),
        "availability": query(
            production,
            "SELECT external_id, store_id, sizes_in_stock FROM catalog.availability ORDER BY 1, 2",
        ),
        "keys": keys,
        "ximilar": sorted(ximilar.stored.items()),
    }


def check(state: dict[str, Any], env: Mapping[str, str], ximilar: FakeXimilar) -> None:
    """The expected end state, worked out from the export (not from the run)."""
    staging = env["STAGING_DB_URL"]
    ids = [external_id(n) for n in range(PRODUCTS)]
    assert [p["external_id"] for p in state["products"]] == ids
    for n, product in enumerate(state["products"]):
        assert product["is_active"]
        assert product["index_scope"] == "pilot"
        assert product["collage_url"].endswith(f"collages/zara/{product['external_id']}.jpg")
        assert len(product["image_urls"]) == photos(n) + (photos(n) - 1) * (n % 2)
        assert product["records"] == XIMILAR_TARGET  # the first photos of each product
    assert [s["store_id"] for s in state["stores"]] == list(STORES)
    assert [(a["external_id"], a["store_id"]) for a in state["availability"]] == [
        (i, s) for i in ids for s in STORES
    ]
    originals = [
        original_key("zara", external_id(n), i)
        for n in range(PRODUCTS)
        for i in range(1, photos(n) + (photos(n) - 1) * (n % 2) + 1)
    ]
    collages = [f"collages/zara/{i}.jpg" for i in ids]
    assert state["keys"] == sorted(originals + collages)
    assert len(state["ximilar"]) == XIMILAR_TARGET * PRODUCTS
    assert {times for _, times in state["ximilar"]} == {1}  # no record inserted twice
    assert not ximilar.resent_while_held
    assert count(staging, "sync_status = 'synced' AND image_status = 'collage_ready'") == PRODUCTS
    assert count(staging, "ximilar_status = 'synced'") == PRODUCTS
    assert not query(staging, "SELECT id FROM scraper_logs WHERE status NOT IN"
                              " ('success', 'abandoned')")  # fmt: skip


#: Per job that can be killed: its stage (lease columns) and what a finished product shows.
KILLABLE = {
    "download_pending": ("download", "image_status = 'uploaded'"),
    "process_new": ("collage", "image_status = 'collage_ready'"),
    "ximilar_sync": ("ximilar", "ximilar_status = 'synced'"),
    "sync_to_production": ("sync", "sync_status = 'synced'"),
}


def kill_mid_batch(proc: subprocess.Popen[str], job: str, staging: str) -> None:
    """SIGKILL the runner once a product is done and before all are; lapse what it held."""
    stage, done = KILLABLE[job]
    wait_until(lambda: count(staging, done) >= 1, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert count(staging, done) < PRODUCTS, "killed after the whole batch"
    # The dead run's leases lapse (as LEASE_SECONDS would let them) and its log row is long
    # past its limit when the timer starts the job again.
    query(staging, f"UPDATE raw_products SET {stage}_lease_until = now()"
                   f" - interval '1 second' WHERE {stage}_owner IS NOT NULL")  # fmt: skip
    query(staging, "UPDATE scraper_logs SET started_at = now() - interval '1 day'"
                   " WHERE status = 'running'")  # fmt: skip


def run_cycle(env: Mapping[str, str], kill: tuple[str, str] | None = None) -> None:
    """Every job once in schedule order; ``kill`` is SIGKILLed mid-batch and run again."""
    for host, job in CYCLE:
        proc = launch(host, job, env)
        if (host, job) == kill:
            kill_mid_batch(proc, job, env["STAGING_DB_URL"])
            proc = launch(host, job, env)
        finish(proc, f"{host} {job}")


def test_the_whole_cycle_runner_by_runner(
    cycle_env: dict[str, str], s3_bucket: S3Bucket, fake_ximilar: FakeXimilar
) -> None:
    """Every job of every host as a process, in schedule order, fills production exactly."""
    run_cycle(cycle_env)
    check(end_state(cycle_env, s3_bucket, fake_ximilar), cycle_env, fake_ximilar)


@pytest.mark.parametrize(
    "kill",
    [("photo_downloader", "download_pending"), ("ximilar_sync", "ximilar_sync")],
    ids=lambda k: k[1],
)
def test_a_runner_killed_mid_batch_and_restarted_changes_nothing(
    kill: tuple[str, str],
    cycle_env: dict[str, str],
    s3_bucket: S3Bucket,
    fake_ximilar: FakeXimilar,
) -> None:
    """SIGKILL mid-batch and a restart: the same end state as an undisturbed cycle."""
    run_cycle(cycle_env, kill=kill)
    state = end_state(cycle_env, s3_bucket, fake_ximilar)
    check(state, cycle_env, fake_ximilar)
    statuses = [r["status"] for r in query(
        cycle_env["STAGING_DB_URL"],
        f"SELECT status FROM scraper_logs WHERE scraper_name = '{kill[1]}' ORDER BY id",
    )]  # fmt: skip
    assert statuses == ["abandoned", "success"]
