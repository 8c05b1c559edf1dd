"""Collect: Apify dataset -> staging, ours vs the source document's per-item loop.

Both sides read through the real ``apify-client`` from the local fake Apify API (pages of
1,000 items, the wire format of tests/fake_apify.py) into a fresh migrated staging database
(``UNDECAT_TEST_DSN``'s server, else an embedded PostgreSQL).

The fake API runs in a process of its own (``python -m tests.fake_apify``), so its JSON
encoding is neither in the measured process's time nor in its memory.

* **Ours**: the ``apify_zara`` job (CollectJob: map, validate, batched change-aware upsert of
  1,000 rows a statement, delisting check) over 10,000, 47,000 and 100,000 items, ``RUNS``
  times each (``BENCH_COLLECT_RUNS``, default 3; the median is reported with the lowest and
  highest); each run is a fresh child process, so its peak RSS growth (sampled every 5 ms
  over the RSS measured just before the run) is its own.
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
from benchmarks.relay import calibrated_relay, route
from undecat.adapters.apify import ApifyCatalogSource, mapper_for
from undecat.adapters.clock import SystemClock
from undecat.adapters.postgres import Database, PostgresCatalogStore
from undecat.adapters.postgres.embedded import EmbeddedPostgres
from undecat.jobs.collect import CollectJob
from undecat.redact import Secret

TASK = "z1psVOTyIKFdU5N9n"
SIZES = (10_000, 47_000, 100_000)
BASELINE_ITEMS = 3_000
#: The round trip the relay adds (calibrated on ``SELECT 1``).
RTT_MS = 0.5
#: Runs of ours per size and route; the median is reported, with the lowest and highest
#: (a run of a few seconds on two shared cores varies by a third from one to the next).
RUNS = int(os.environ.get("BENCH_COLLECT_RUNS", "3"))


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
    """``dsn``, or the same database through BENCH_BOUNCER_PORT and/or BENCH_RELAY_PORT.

    The relay forwards to the bouncer (when both are set) or to the server.
    """
    port = os.environ.get("BENCH_BOUNCER_PORT")
    if port:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
        dsn = Bouncer(int(port), str(info.get("user", "postgres"))).dsn_for(str(info["dbname"]))
    relay = os.environ.get("BENCH_RELAY_PORT")
    return route(dsn, int(relay)) if relay else dsn


def _fetch_only(url: str) -> float:
    """Seconds to start the task's run and read all its items, doing nothing with them.

    Taken off both sides: it is the Apify API's and apify-client's time (HTTP, JSON
    decoding), the same for any way of storing the items. Each side times it before and
    after its run and keeps the shorter (the first pass also warms the fake API up).
    """
    started = time.perf_counter()
    for _ in _source(url).start("zara").items():
        pass
    return time.perf_counter() - started


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
        fetch = _fetch_only(url)
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
        fetch = min(fetch, _fetch_only(url))  # the first pass also warms the fake API up
    assert result.records_new == size, result
    return {
        "size": size,
        "seconds": elapsed,
        "fetch": fetch,
        "items_per_s": size / (elapsed - fetch),
        "start_mb": rss.start_rss / 2**20,
        "growth_mb": (rss.peak - rss.start_rss) / 2**20,
    }


def _document_loop(size: int) -> float:
    """The document's ``collect_brand`` over ``size`` items; return items/s."""
    with staging_database("bench_collect_doc") as dsn, _fake_api(size) as url:
        fetch = _fetch_only(url)
        client = _source(url).client
        # prepare_threshold=None: behind PgBouncer the loop fails on prepared statements.
        with psycopg.connect(_routed(dsn), autocommit=True, prepare_threshold=None) as db:
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
        fetch = min(fetch, _fetch_only(url))
    return size / (elapsed - fetch)


def _ours(size: int, env: dict[str, str]) -> dict[str, float]:
    """The median of RUNS runs of ours (each in a fresh process), with the lowest and highest."""
    runs = sorted((_one_run(size, env) for _ in range(RUNS)), key=lambda f: f["items_per_s"])
    median = dict(runs[len(runs) // 2])
    median["low"] = runs[0]["items_per_s"]
    median["high"] = runs[-1]["items_per_s"]
    return median


def _one_run(size: int, env: dict[str, str]) -> dict[str, float]:
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
    header = (
        "items", "seconds", "fetch", "items/s", "vs doc", f"{RUNS} runs", "RSS start",
        "peak growth",
    )  # fmt: skip
    print("{:>8} {:>8} {:>6} {:>9} {:>7} {:>13} {:>10} {:>12}".format(*header))
    for f in figures:
        spread = f"{f['low'] / baseline:.1f}-{f['high'] / baseline:.1f}x"
        print(
            f"{f['size']:>8,.0f} {f['seconds']:>8.1f} {f['fetch']:>6.1f} {f['items_per_s']:>9,.0f}"
            f" {f['items_per_s'] / baseline:>6.1f}x {spread:>13} {f['start_mb']:>7.0f} MB"
            f" {f['growth_mb']:>9.1f} MB"
        )


def main() -> None:
    """Print items/s and peak RSS growth of ours against the document's loop, three routes.

    Loopback (10k, 47k and 100k items: the memory figure), then 47k items at 0.5 ms round
    trip (the latency relay) and at 0.5 ms through PgBouncer (transaction mode). The
    document's loop runs on the same route just before ours; fetch time is off both sides.
    """
    server: EmbeddedPostgres | None = None
    env = dict(os.environ)
    if not env.get("UNDECAT_TEST_DSN"):
        server = EmbeddedPostgres().start()
        env["UNDECAT_TEST_DSN"] = os.environ["UNDECAT_TEST_DSN"] = server.dsn
    sizes = [int(n) for n in os.environ.get("UNDECAT_BENCH_COLLECT_SIZES", "").split(",") if n]
    try:
        _route("loopback", env, sizes or list(SIZES))
        admin = env["UNDECAT_TEST_DSN"]
        with calibrated_relay(admin, rtt_ms=RTT_MS) as (relay, added):
            routed = {**env, "BENCH_RELAY_PORT": str(relay.port)}
            _route(f"{RTT_MS} ms (relay adds {added:.2f} ms)", routed, [47_000])
        with running_pgbouncer_for(admin) as bouncer:
            pooled = {**env, "BENCH_BOUNCER_PORT": str(bouncer.port)}
            with _environ(pooled):
                through = _routed(admin)
            with calibrated_relay(through, rtt_ms=RTT_MS) as (relay, added):
                routed = {**pooled, "BENCH_RELAY_PORT": str(relay.port)}
                _route(f"{RTT_MS} ms + PgBouncer (relay adds {added:.2f} ms)", routed, [47_000])
    finally:
        if server is not None:
            server.stop()
            os.environ.pop("UNDECAT_TEST_DSN", None)


def _route(label: str, env: dict[str, str], sizes: list[int]) -> None:
    """The document's loop before and after ours on one route (the better one is kept)."""
    with _environ(env):
        before = _document_loop(BASELINE_ITEMS)
    figures = [_ours(size, env) for size in sizes]
    with _environ(env):
        after = _document_loop(BASELINE_ITEMS)
    print(f"\n{label}: document loop before ours {before:,.0f} items/s, after {after:,.0f}")
    _report(label, max(before, after), figures)


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(json.dumps(_child(int(sys.argv[2]))))
    else:
        main()
