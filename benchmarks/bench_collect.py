"""Collect: Apify dataset -> staging, ours vs the source document's per-item loop.

Both sides read through the real ``apify-client`` from the local fake Apify API (pages of
1,000 items, the wire format of tests/fake_apify.py) into a fresh migrated staging database
(``UNDECAT_TEST_DSN``'s server, else an embedded PostgreSQL).

The fake API runs in a process of its own (``python -m tests.fake_apify``), so its JSON
encoding is neither in the measured process's time nor in its memory.

* **Ours**: the ``apify_zara`` job (CollectJob: map, validate, batched change-aware upsert of
  1,000 rows a statement, delisting check) over 10,000, 47,000 and 100,000 items; each size
  runs in a fresh child process so its peak RSS growth (sampled every 5 ms over the RSS
  measured just before the run) is its own.
* **Baseline**: the document's loop (``collect_brand``): per item, its photo/price lines and
  one ``INSERT ... ON CONFLICT`` statement, autocommit, psycopg's default statement
  preparation (generous to it). Measured on a 3,000-item dataset and extrapolated as
  items/s -- it scales linearly, one round trip per item.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import psutil
import psycopg
from tests.fake_apify import TOKEN, FakeApify, RunPlan
from tests.fix_pgbouncer import Bouncer, running_pgbouncer_for
from tests.strategies import zara_item

from benchmarks._db import staging_database
from benchmarks.bench_foundation import _DOCUMENT_UPSERT  # the document's statement
from undecat.adapters.apify import ApifyCatalogSource, mapper_for
from undecat.adapters.clock import SystemClock
from undecat.adapters.postgres import Database, PostgresCatalogStore
from undecat.adapters.postgres.embedded import EmbeddedPostgres
from undecat.jobs.collect import CollectJob
from undecat.redact import Secret

TASK = "z1psVOTyIKFdU5N9n"
SIZES = (10_000, 47_000, 100_000)
BASELINE_ITEMS = 3_000


def _source(url: str) -> ApifyCatalogSource:
    return ApifyCatalogSource(
        Secret(TOKEN), tasks={"zara": TASK}, api_url=url, wait=timedelta(minutes=5)
    )


class _RssSampler:
    """Samples this process's RSS every few milliseconds; keeps the peak."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self.start_rss = self._process.memory_info().rss
        self.peak = self.start_rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __enter__(self) -> _RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@contextlib.contextmanager
def _fake_api(size: int) -> Iterator[str]:
    """A fake Apify API in its own process serving ``size`` items for TASK; yield its URL."""
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_apify", str(size), TASK],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        yield server.stdout.readline().strip()
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(30)
        if server.stdout is not None:
            server.stdout.close()


def _routed(dsn: str) -> str:
    """``dsn`` itself, or the same database through the PgBouncer in BENCH_BOUNCER_PORT."""
    port = os.environ.get("BENCH_BOUNCER_PORT")
    if not port:
        return dsn
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    return Bouncer(int(port), str(info.get("user", "postgres"))).dsn_for(str(info["dbname"]))


def _child(size: int) -> dict[str, float]:
    """Run our job over ``size`` items; return items/s and RSS figures (in a fresh process)."""
    with (
        staging_database("bench_collect") as dsn,
        Database(Secret(_routed(dsn))) as db,
        _fake_api(size) as url,
    ):
        # Warm up the client, pool and code paths on a small in-process dataset first.
        warm = FakeApify().start()
        try:
            warm.plan("warm", RunPlan(items=[zara_item(n) for n in range(1, 20)]))
            CollectJob(
                "zara",
                ApifyCatalogSource(Secret(TOKEN), tasks={"zara": "warm"}, api_url=warm.url),
                PostgresCatalogStore(db),
                mapper_for("zara"),
                SystemClock(),
                delist=False,
            )()
        finally:
            warm.stop()
        job = CollectJob(
            brand="zara",
            source=_source(url),
            store=PostgresCatalogStore(db),
            mapper=mapper_for("zara"),
            clock=SystemClock(),
        )
        with _RssSampler() as rss:
            started = time.perf_counter()
            result = job()
            elapsed = time.perf_counter() - started
    assert result.records_new == size, result
    return {
        "size": size,
        "seconds": elapsed,
        "items_per_s": size / elapsed,
        "start_mb": rss.start_rss / 2**20,
        "growth_mb": (rss.peak - rss.start_rss) / 2**20,
    }


def _document_loop(size: int) -> float:
    """The document's ``collect_brand`` over ``size`` items; return items/s."""
    with staging_database("bench_collect_doc") as dsn, _fake_api(size) as url:
        client = _source(url).client
        with psycopg.connect(dsn, autocommit=True) as db:
            started = time.perf_counter()
            run = client.task(TASK).call()
            assert run is not None
            # run["defaultDatasetId"] in the document: a TypeError with apify-client 3.x.
            dataset = client.dataset(run.default_dataset_id)
            brand = "zara"
            for item in dataset.iterate_items():
                photo_urls = []
                for color in item.get("colorsSizesImagesJSON", []):
                    for media in color.get("xmedia", [])[:5]:
                        photo_urls.append(media.replace("{width}", "1920"))  # noqa: PERF401
                price_aed = item["price"] / 100 if item.get("price") else None
                db.execute(
                    _DOCUMENT_UPSERT,
                    (
                        f"apify_{brand}",
                        str(item["id"]),
                        brand,
                        item["name"],
                        price_aed,
                        item.get("category"),
                        item.get("colors"),
                        json.dumps(item.get("sizes", "")),
                        json.dumps(item.get("detailedComposition")),
                        item.get("description"),
                        json.dumps(photo_urls),
                        json.dumps(item),
                    ),
                )
            elapsed = time.perf_counter() - started
    return size / elapsed


def _ours(size: int, env: dict[str, str]) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_collect", "--child", str(size)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    figures: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return figures


def _report(label: str, baseline: float, figures: list[dict[str, float]]) -> None:
    print(f"\n{label}: document loop ({BASELINE_ITEMS:,} items): {baseline:,.0f} items/s")
    header = ("items", "seconds", "items/s", "vs doc", "RSS start", "peak growth")
    print("{:>8} {:>8} {:>9} {:>7} {:>10} {:>12}".format(*header))
    for f in figures:
        print(
            f"{f['size']:>8,.0f} {f['seconds']:>8.1f} {f['items_per_s']:>9,.0f}"
            f" {f['items_per_s'] / baseline:>6.1f}x {f['start_mb']:>7.0f} MB"
            f" {f['growth_mb']:>9.1f} MB"
        )


def main() -> None:
    """Print items/s and peak RSS growth of ours against the document's loop, two routes."""
    server: EmbeddedPostgres | None = None
    env = dict(os.environ)
    if not env.get("UNDECAT_TEST_DSN"):
        server = EmbeddedPostgres().start()
        env["UNDECAT_TEST_DSN"] = os.environ["UNDECAT_TEST_DSN"] = server.dsn
    try:
        baseline = _document_loop(BASELINE_ITEMS)
        _report("direct TCP", baseline, [_ours(size, env) for size in SIZES])
        with running_pgbouncer_for(env["UNDECAT_TEST_DSN"]) as bouncer:
            routed = {**env, "BENCH_BOUNCER_PORT": str(bouncer.port)}
            os.environ["BENCH_BOUNCER_PORT"] = str(bouncer.port)
            try:
                via = _document_loop(BASELINE_ITEMS)
            finally:
                os.environ.pop("BENCH_BOUNCER_PORT")
            _report("via PgBouncer (the deployment's route)", via, [_ours(47_000, routed)])
    finally:
        if server is not None:
            server.stop()
            os.environ.pop("UNDECAT_TEST_DSN", None)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(json.dumps(_child(int(sys.argv[2]))))
    else:
        main()
