"""The whole weekly cycle: every stage as its runner process, local fakes, politeness off.

``N`` products x 5 small photos go through ``apify_zara`` (collect, from the fake Apify
API), ``undecat pilot --sample 10`` (10 % pilot), ``download_pending`` (through a real
proxy.py to the local photo origin), ``process_new`` (collages into SeaweedFS),
``ximilar_sync`` (the fake collection, at the default ``XIMILAR_RATE_LIMIT`` of 10
requests/s), ``stores_refresh`` and ``availability_poll`` (the fake Zara, 10 stores,
through the proxy) and ``sync_to_production`` (a second database on the same PostgreSQL).
Each runner is its own process, as systemd starts it (the module ``undecat.runners.HOST``
run as ``python -m`` does, through a few lines that record the process's own peak RSS,
``VmHWM``, at exit).

Printed per size: seconds and peak RSS per stage; per product; then the same cycle again
with nothing changed (the baseline is the first cycle of the same run: goal <= 5 % of it,
and 0 photo bytes through the proxy, read from the runs' Prometheus text files); then the
cost per product of each size against the smallest (goal: within 10 %) and a linear
extrapolation to 47,000 products (goal <= 30 min).

Sizes: ``BENCH_CYCLE_PRODUCTS`` (comma-separated, default ``1000``; the figures in
docs/benchmarks.md are from ``BENCH_CYCLE_PRODUCTS=4700,47000``). Profiles: with
``BENCH_CYCLE_PROFILE=download_pending,process_new`` and ``BENCH_CYCLE_PROFILE_DIR=DIR``,
those runners run under py-spy (``pip install py-spy``), which writes collapsed stacks of
every thread to ``DIR`` (the figures of a profiled run are not comparable).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import trustme
from PIL import Image, ImageChops, ImageDraw, ImageFilter
from prometheus_client.parser import text_string_to_metric_families
from psycopg import sql
from tests.fake_apify import TOKEN as APIFY_TOKEN
from tests.fake_apify import FakeApify, RunPlan
from tests.fix_origin import Origin, Reply
from tests.fix_proxy import PROXY_PASSWORD, PROXY_USER, start_proxy, stop_proxy
from tests.fix_s3 import SeaweedS3
from tests.fix_ximilar import COLLECTION, TOKEN, serve
from tests.fix_zara import ZaraServer, store_entry
from tests.photo_samples import encode
from tests.strategies import zara_item

from undecat.adapters.postgres import apply_migrations
from undecat.adapters.postgres.embedded import EmbeddedPostgres, free_port
from undecat.redact import Secret

SIZES = [int(s) for s in os.environ.get("BENCH_CYCLE_PRODUCTS", "1000").split(",") if s]
PHOTOS = 5
STORES = tuple(range(1230, 1240))
TASK = "z1psVOTyIKFdU5N9n"
TARGET = 47_000
#: The weekly cycle in the order the timers run it: (stage, host, job).
STAGES: tuple[tuple[str, str, str], ...] = (
    ("collect", "apify", "apify_zara"),
    ("pilot 10 %", "undecat", "pilot"),
    ("download", "photo_downloader", "download_pending"),
    ("collage", "collage", "process_new"),
    ("ximilar", "ximilar_sync", "ximilar_sync"),
    ("stores", "scraper", "stores_refresh"),
    ("availability", "scraper", "availability_poll"),
    ("sync", "scraper", "sync_to_production"),
)


def _photo() -> bytes:
    """A small product photo: 360 x 540, about 28 KB at quality 75.

    A garment on a plain light background, as catalog photos are: a shaded body with folds
    and a fabric grain, soft edges. (Pure noise, as in the first version of this benchmark,
    is JPEG's worst case: 69 KB at this size, 2.5x the bytes through every hop and a
    decoder and encoder working on nothing but high frequencies.)
    """
    width, height = 360, 540
    background = Image.new("RGB", (width, height), (238, 236, 232))
    shade = Image.linear_gradient("L").resize((width, height)).point(lambda v: 90 + v // 3)
    folds = Image.effect_mandelbrot((width, height), (-0.7, -0.3, 0.2, 0.5), 40).filter(
        ImageFilter.GaussianBlur(6)
    )
    green = ImageChops.multiply(shade, folds.point(lambda v: 128 + v // 2))
    body = Image.merge("RGB", (shade, green, folds.point(lambda v: 60 + v // 4)))
    grain = Image.effect_noise((width, height), 48).filter(ImageFilter.GaussianBlur(0.6))
    body = ImageChops.overlay(body, Image.merge("RGB", (grain, grain, grain)))
    mask = Image.new("L", (width, height), 0)
    outline = ImageDraw.Draw(mask)
    outline.polygon([(110, 60), (250, 60), (300, 150), (280, 500), (80, 500), (60, 150)], fill=255)
    outline.ellipse((150, 20, 210, 80), fill=255)
    photo = Image.composite(body, background, mask.filter(ImageFilter.GaussianBlur(2)))
    return encode(photo, "JPEG", quality=75)


def _item(origin: Origin, n: int) -> dict[str, Any]:
    """Product ``n``: one colour (its own colour product id), five photos on the origin."""
    external_id = 600_000_000 + 10 * n
    item = zara_item(external_id)
    colour = item["colorsSizesImagesJSON"][0]  # type: ignore[index]
    urls = [origin.url(f"/w/{n}/{i}.jpg") for i in range(1, PHOTOS + 1)]
    return {**item, "colorsSizesImagesJSON": [{**colour, "xmedia": urls}]}


@contextlib.contextmanager
def _services() -> Iterator[dict[str, Any]]:
    """PostgreSQL, SeaweedFS, proxy.py and the fakes, for every size of this run."""
    with contextlib.ExitStack() as stack:
        admin = os.environ.get("UNDECAT_TEST_DSN")
        roots: dict[str, list[int]] = {}
        if not admin:
            server = EmbeddedPostgres().start()
            stack.callback(server.stop)
            admin = server.dsn
            pid = (server.data_dir / "pgdata" / "postmaster.pid").read_text().split()[0]
            roots["PostgreSQL"] = [int(pid)]
        s3 = SeaweedS3.start()
        stack.callback(s3.stop)
        workdir = Path(tempfile.mkdtemp(prefix="undecat-bench-cycle-"))
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        port = free_port()
        proxy = start_proxy(workdir, port)
        stack.callback(stop_proxy, proxy)
        roots["SeaweedFS"] = [p.pid for p in s3.procs]
        roots["proxy.py"] = [proxy.pid]
        ca = trustme.CA()
        origin = Origin(ca)
        stack.callback(origin.close)
        origin.serve_default(Reply(body=_photo()))
        zara = ZaraServer(ca)
        stack.callback(zara.close)
        zara.fake.stores = [store_entry(s) for s in STORES]
        ximilar_gen = serve(time.monotonic)
        ximilar = next(ximilar_gen)
        stack.callback(ximilar_gen.close)
        apify = FakeApify().start()
        stack.callback(apify.stop)
        yield {
            "admin": admin,
            "s3": s3,
            "workdir": workdir,
            "proxy_url": f"http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:{port}",
            "origin": origin,
            "zara": zara,
            "ximilar": ximilar,
            "apify": apify,
            "cpu": _Cpu(roots),
        }


@contextlib.contextmanager
def _databases(admin: str) -> Iterator[tuple[str, str]]:
    """A fresh staging and production database."""
    names = [f"bench_cycle_{kind}_{uuid.uuid4().hex[:6]}" for kind in ("s", "p")]
    with psycopg.connect(admin, autocommit=True) as conn:
        for name in names:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    # The runners read URLs (postgresql://...), not key=value connection strings.
    staging, production = (urlsplit(admin)._replace(path=f"/{n}").geturl() for n in names)
    try:
        apply_migrations(Secret(staging), "staging")
        apply_migrations(Secret(production), "production")
        yield staging, production
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            for name in names:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )


#: Runs a module as ``python -m`` does and, at exit, writes the process's own peak RSS
#: (VmHWM, KiB) to ``$BENCH_RSS_FILE``. Not ``wait4``'s ``ru_maxrss``: Linux carries the
#: forking parent's peak into the child's across ``exec``, so every runner would show the
#: benchmark process's own size.
_WRAPPER = """
import atexit, os, runpy, sys
def _hwm():
    with open("/proc/self/status") as status:
        kib = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    with open(os.environ["BENCH_RSS_FILE"], "w") as out:
        out.write(kib)
atexit.register(_hwm)
runpy.run_module(sys.argv.pop(1), run_name="__main__", alter_sys=True)
"""


class _Cpu:
    """CPU seconds (user + system) of the runner and of each stand-in, per stage.

    The runner's own time comes from ``RUSAGE_CHILDREN`` (it is this process's child); the
    stand-ins' from ``/proc``: PostgreSQL (the postmaster named by ``postmaster.pid`` and its
    backends, reaped ones included), SeaweedFS and proxy.py (their process trees), and this
    process itself, which serves the photo origin and the Apify, Zara and Ximilar fakes.
    """

    def __init__(self, roots: Mapping[str, Sequence[int]]) -> None:
        self.roots = dict(roots)
        self.ticks = os.sysconf("SC_CLK_TCK")

    def _tree(self) -> dict[str, float]:
        parents: dict[int, int] = {}
        spent: dict[int, float] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            parents[int(entry.name)] = int(fields[1])
            spent[int(entry.name)] = sum(int(f) for f in fields[11:15]) / self.ticks
        totals = dict.fromkeys(self.roots, 0.0)
        wanted = {pid: name for name, pids in self.roots.items() for pid in pids}
        for pid, seconds in spent.items():
            at, hops = pid, 0
            while at not in wanted and at in parents and hops < 64:
                at, hops = parents[at], hops + 1
            if at in wanted:
                totals[wanted[at]] += seconds
        return totals

    def snapshot(self) -> dict[str, float]:
        """Cumulative CPU seconds so far: runners, the stand-ins, this process."""
        own = os.times()
        runners = resource.getrusage(resource.RUSAGE_CHILDREN)
        return {
            "runner": runners.ru_utime + runners.ru_stime,
            "fakes": own.user + own.system,
            **self._tree(),
        }


def _run(host: str, job: str, env: Mapping[str, str], log: Path) -> tuple[float, float]:
    """Run one job as its own process; return (seconds, peak RSS in MiB). It must succeed."""
    if host == "undecat":
        argv = ["undecat.cli", "pilot", "--brand", "zara", "--sample", "10"]
    else:
        argv = [f"undecat.runners.{host}", job]
    rss = log.with_suffix(".rss")
    command = [sys.executable, "-c", _WRAPPER, *argv]
    profiles = os.environ.get("BENCH_CYCLE_PROFILE_DIR")
    if profiles and job in os.environ.get("BENCH_CYCLE_PROFILE", "").split(","):
        # py-spy (pip install py-spy) samples every thread; collapsed stacks, one file a run.
        out_file = Path(profiles) / f"{job}-{time.strftime('%H%M%S')}.txt"
        spy = ["py-spy", "record", "--format", "raw", "--rate", "250", "--threads"]
        if os.environ.get("BENCH_CYCLE_PROFILE_GIL"):
            spy.append("--gil")  # only the thread holding the GIL: what serialises the run
        command = [*spy, "--output", str(out_file), "--", *command]
    started = time.perf_counter()
    with log.open("ab") as out:
        proc = subprocess.run(
            command,
            env={**env, "BENCH_RSS_FILE": str(rss)},
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    took = time.perf_counter() - started
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{host} {job} exited {proc.returncode}:\n{tail}")
    return took, int(rss.read_text()) / 1024


def _proxy_bytes(metrics: Path) -> int:
    """Photo bytes received through the proxy by the runs whose text files are in ``metrics``."""
    total = 0
    for path in metrics.glob("undecat_*.prom"):
        for family in text_string_to_metric_families(path.read_text()):
            if family.name == "undecat_job_last_run_proxy_bytes":
                total += int(sum(s.value for s in family.samples))
    return total


def _count(dsn: str, query: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(query.encode()).fetchone()
    return int(row[0]) if row else 0


def _cycle(
    env: Mapping[str, str], log: Path, cpu: _Cpu
) -> tuple[dict[str, tuple[float, float, int]], dict[str, dict[str, float]]]:
    """Every stage once; its figures and the CPU seconds it cost each process.

    ``{stage: (seconds, peak RSS MiB, photo bytes via the proxy)}`` and
    ``{stage: {process: CPU seconds}}``.
    """
    metrics = Path(env["UNDECAT_METRICS_DIR"])
    figures = {}
    spent = {}
    for stage, host, job in STAGES:
        for old in metrics.glob("undecat_*.prom"):
            old.unlink()
        before = cpu.snapshot()
        took, rss = _run(host, job, env, log)
        after = cpu.snapshot()
        figures[stage] = (took, rss, _proxy_bytes(metrics))
        spent[stage] = {name: after[name] - before.get(name, 0.0) for name in after}
    return figures, spent


def _size(services: dict[str, Any], products: int) -> dict[str, Any]:
    """Two cycles of ``products`` products on fresh databases and a fresh bucket."""
    origin: Origin = services["origin"]
    zara: ZaraServer = services["zara"]
    apify: FakeApify = services["apify"]
    s3: SeaweedS3 = services["s3"]
    items = [_item(origin, n) for n in range(products)]
    for n in range(products):
        zara.fake.stock[str(600_000_000 + 10 * n + 1)] = {
            s: [("S", (n + s) % 3), ("M", 1)] for s in STORES
        }
    bucket = s3.create_bucket("bench")
    data = services["workdir"] / f"data-{products}"
    metrics = data / "metrics"
    metrics.mkdir(parents=True)
    log = services["workdir"] / f"runners-{products}.log"
    with _databases(services["admin"]) as (staging, production):
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(services["workdir"]),
            "STAGING_DB_URL": staging,
            "PRODUCTION_DB_URL": production,
            "DATA_DIR": str(data),
            "UNDECAT_METRICS_DIR": str(metrics),
            "APIFY_TOKEN": APIFY_TOKEN,
            "APIFY_API_URL": apify.url,
            "APIFY_TASK_ZARA": TASK,
            "PROXY_URL": services["proxy_url"],
            "ALLOWED_PHOTO_HOSTS": "localhost",
            "ALLOWED_PHOTO_HTTP_HOSTS": ",".join(origin.http_hosts),
            "DOWNLOAD_DELAY_MIN": "0",
            "DOWNLOAD_DELAY_MAX": "0",
            "XIMILAR_API_URL": services["ximilar"].url,
            "XIMILAR_API_TOKEN": TOKEN,
            "XIMILAR_COLLECTION_ID": COLLECTION,
            "ZARA_BASE_URL": zara.base_url(),
            "ZARA_USER_AGENT": "ZaraApp/bench",
            "DUBAI_ZARA_STORES": ",".join(str(s) for s in STORES),
            "AVAILABILITY_DELAY_MIN": "0",
            "AVAILABILITY_DELAY_MAX": "0",
            "S3_ENDPOINT": s3.endpoint,
            "S3_ACCESS_KEY": s3.access_key,
            "S3_SECRET_KEY": s3.secret_key,
            "S3_BUCKET": bucket,
            "S3_PUBLIC_BASE_URL": f"{s3.endpoint}/{bucket}",
        }
        try:
            apify.plan(TASK, RunPlan(items=items))
            first, cpu = _cycle(env, log, services["cpu"])
            done = {
                "collage_ready": _count(
                    staging, "SELECT count(*) FROM raw_products WHERE image_status='collage_ready'"
                ),
                "synced": _count(production, "SELECT count(*) FROM catalog.products"),
                "pilot_indexed": _count(
                    staging, "SELECT count(*) FROM raw_products WHERE ximilar_status='synced'"
                ),
                "availability_rows": _count(
                    production, "SELECT count(*) FROM catalog.availability"
                ),
            }
            apify.plan(TASK, RunPlan(items=items))
            second, _ = _cycle(env, log, services["cpu"])
        finally:
            s3.drop_bucket(bucket)
            zara.fake.stock.clear()
    return {"products": products, "first": first, "second": second, "done": done, "cpu": cpu}


def _print_size(result: dict[str, Any]) -> None:
    products, first, second = result["products"], result["first"], result["second"]
    total1 = sum(t for t, _, _ in first.values())
    total2 = sum(t for t, _, _ in second.values())
    weekly2 = total2 - second["availability"][0]
    weekly1 = total1 - first["availability"][0]
    print(f"\n{products:,} products x {PHOTOS} photos: {json.dumps(result['done'])}")
    print(f"  {'stage':13} {'first s':>9} {'ms/product':>10} {'peak RSS':>9} {'second s':>9}")
    for stage, _, _ in STAGES:
        t1, rss, _ = first[stage]
        t2, _, _ = second[stage]
        print(f"  {stage:13} {t1:9.1f} {1000 * t1 / products:10.2f} {rss:7.0f}Mi {t2:9.1f}")
    print(f"  {'total':13} {total1:9.1f} {1000 * total1 / products:10.2f} {'':9} {total2:9.1f}")
    names = list(next(iter(result["cpu"].values())))
    print(f"  CPU seconds of the first cycle, by process ({', '.join(names)}):")
    for stage, _, _ in STAGES:
        spent = result["cpu"][stage]
        print(f"  {stage:13} " + " ".join(f"{spent[n]:9.1f}" for n in names))
    print(
        f"  unchanged second cycle: {total2:.1f} s = {total2 / total1:.1%} of the first"
        f" (without the hourly availability poll, which polls again by design:"
        f" {weekly2:.1f} s = {weekly2 / weekly1:.1%}); photo bytes via the proxy:"
        f" first {first['download'][2]:,}, second {sum(b for _, _, b in second.values()):,}"
    )


def main() -> None:
    """Run the cycle for every size; print the figures and the extrapolation to 47,000."""
    results = []
    with _services() as services:
        for products in SIZES:
            result = _size(services, products)
            _print_size(result)
            results.append(result)
    base = results[0]
    per = {
        r["products"]: {s: r["first"][s][0] / r["products"] for s, _, _ in STAGES} for r in results
    }
    if len(results) > 1:
        print(f"\ncost per product against {base['products']:,} products (goal within 10 %):")
        for r in results[1:]:
            n = r["products"]
            whole = sum(per[n].values()) / sum(per[base["products"]].values())
            stages = ", ".join(
                f"{s} {per[n][s] / per[base['products']][s]:.2f}x" for s, _, _ in STAGES
            )
            print(f"  {n:,}: whole cycle {whole:.2f}x ({stages})")
    largest = results[-1]["products"]
    minutes = {s: per[largest][s] * TARGET / 60 for s, _, _ in STAGES}
    print(f"\nlinear extrapolation to {TARGET:,} products from {largest:,} (goal <= 30 min):")
    print("  " + ", ".join(f"{s} {m:.1f}" for s, m in minutes.items()))
    print(f"  whole cycle {sum(minutes.values()):.1f} min")
    if len(results) > 1:
        # Two sizes give each stage a fixed part (process start, connections) and a part
        # per product: t = fixed + n x per_product. The second cycle is mostly fixed.
        small, large = results[0], results[-1]
        span = large["products"] - small["products"]
        for cycle in ("first", "second"):
            at = 0.0
            for stage, _, _ in STAGES:
                slope = (large[cycle][stage][0] - small[cycle][stage][0]) / span
                fixed = small[cycle][stage][0] - slope * small["products"]
                at += max(0.0, fixed + slope * TARGET)
            print(f"  fitted fixed + per-product, {cycle} cycle at {TARGET:,}: {at / 60:.1f} min")
