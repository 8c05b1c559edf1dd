"""Photo downloader: throughput against the politeness bound and the sequential loop; memory.

A local HTTPS origin answers every photo after 200 ms (``latency``); every request goes
through a real proxy.py with basic auth (CONNECT tunnels), with the real fetcher (pause,
slots, user agents, TLS verification) and the real Pillow validation. The queue and the
object store are in memory (S3 and PostgreSQL have their own benchmarks), so what is
measured is the download stage itself.

1. **Throughput** with the document's policy (pause 0.5-2 s, mean 1.25 s): at concurrency
   10 the bound is ``10 / (1.25 + 0.2)`` = 6.9 photos/s; the measured rate is reported as
   a fraction of it (goal >= 0.9). The baseline is the document's loop -- one product after
   another, one photo after another -- run with the same pause (goal >= 8x), and also as
   literally written (no pause at all: faster, and exactly what gets an IP blocked).
2. **Memory**: peak RSS of a whole run over 200 and over 2,000 products (two photos each;
   pauses and latency set to zero so the larger run fits the time budget), each in a fresh
   process. Flat means the ratio stays near 1.
"""

from __future__ import annotations

import json
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import trustme
from tests.download_fakes import download_queue
from tests.fakes import product
from tests.fix_origin import Origin, Reply
from tests.fix_proxy import PROXY_PASSWORD, PROXY_USER, start_proxy, stop_proxy
from tests.photo_samples import encode

from undecat.adapters.clock import SystemClock
from undecat.adapters.http import FetchSettings, ProxyPhotoFetcher
from undecat.adapters.imaging.validate import PhotoValidator
from undecat.adapters.postgres.embedded import free_port
from undecat.jobs.download import DownloadSettings, PhotoDownloader
from undecat.redact import Secret

LATENCY = 0.2
DELAY = (0.5, 2.0)
PHOTOS_PER_PRODUCT = 5


class _CountingStore:
    """An object store that keeps only what it was given, not the bytes (memory stays flat)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.count = 0
        self.bytes = 0

    def put(self, key: str, data: bytes, content_type: str) -> str:
        with self.lock:
            self.count += 1
            self.bytes += len(data)
        return f"mem://{key}"

    def get(self, key: str) -> bytes:
        raise NotImplementedError

    def exists(self, key: str) -> bool:
        return False

    def delete_prefix(self, prefix: str) -> int:
        return 0

    def delete(self, keys: Sequence[str]) -> int:
        return 0

    def public_url(self, key: str) -> str:
        return f"mem://{key}"

    def key_for_url(self, url: str) -> str:
        return url.removeprefix("mem://")


def _photo() -> bytes:
    """A noisy RGB JPEG of about 165 KiB (catalog photos are ~300 KB at 1920 wide)."""
    rng = random.Random(1)
    from PIL import Image  # noqa: PLC0415

    noise = Image.effect_noise((480, 720), 40).convert("RGB")
    tint = Image.new("RGB", noise.size, (rng.randrange(256), 120, 90))
    return encode(Image.blend(noise, tint, 0.5), "JPEG", quality=90)


def _run(
    *,
    proxy: str,
    ca: Path,
    base: str,
    products: int,
    photos: int,
    concurrency: int,
    delay: tuple[float, float],
    batch_size: int = 200,
) -> tuple[float, int]:
    """Download ``products`` x ``photos`` photos; return (seconds, photos stored)."""
    clock = SystemClock()
    urls = [[f"{base}/p/{n}/{i}.jpg" for i in range(1, photos + 1)] for n in range(products)]
    queue = download_queue([product(n + 1, urls[n]) for n in range(products)])
    fetcher = ProxyPhotoFetcher(
        FetchSettings(
            proxy_url=Secret(proxy),
            allowed_hosts=(urlsplit(base).netloc,),
            http_hosts=(urlsplit(base).netloc,),
            ca_bundle=ca,
            concurrency=concurrency,
            delay_min=delay[0],
            delay_max=delay[1],
        ),
        clock=clock,
    )
    store = _CountingStore()
    job = PhotoDownloader(
        queue=queue,
        fetcher=fetcher,
        preparer=PhotoValidator(),
        store=store,
        clock=clock,
        settings=DownloadSettings(
            owner="bench",
            lease=timedelta(hours=1),
            batch_size=batch_size,
            concurrency=concurrency,
        ),
    )
    try:
        started = time.perf_counter()
        result = job.download_pending()
        elapsed = time.perf_counter() - started
    finally:
        fetcher.close()
    if result.records_new != products:
        raise SystemExit(f"benchmark run failed: {result}")
    return elapsed, store.count


def _memory_child(argv: list[str]) -> None:
    """``--memory N PROXY CA BASE``: one run in this fresh process; print its peak RSS."""
    products, proxy, ca, base = int(argv[0]), argv[1], Path(argv[2]), argv[3]
    _run(proxy=proxy, ca=ca, base=base, products=2, photos=2, concurrency=10, delay=(0, 0))
    warm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    elapsed, stored = _run(
        proxy=proxy, ca=ca, base=base, products=products, photos=2, concurrency=10, delay=(0, 0)
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"warm_kib": warm, "peak_kib": peak, "seconds": elapsed, "photos": stored}))


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="undecat-bench-download-") as folder:
        work = Path(folder)
        ca = trustme.CA()
        ca_pem = work / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_pem))
        port = free_port()
        proxy_proc = start_proxy(work, port)
        origin = Origin(ca)
        try:
            _bench(origin, f"http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:{port}", ca_pem)
        finally:
            origin.close()
            stop_proxy(proxy_proc)


def _bench(origin: Origin, proxy: str, ca: Path) -> None:
    photo = _photo()
    base = origin.url("", tls=True)
    # Every path answers the same photo; unknown paths are routed here too.
    origin.serve_default(Reply(body=photo, headers={"Content-Type": "image/jpeg"}))
    origin.latency = LATENCY
    mean_delay = sum(DELAY) / 2
    print(f"photo {len(photo) // 1024} KiB over HTTPS via proxy.py, origin latency {LATENCY} s")

    def rate(products: int, concurrency: int, delay: tuple[float, float], batch: int) -> float:
        seconds, stored = _run(
            proxy=proxy,
            ca=ca,
            base=base,
            products=products,
            photos=PHOTOS_PER_PRODUCT,
            concurrency=concurrency,
            delay=delay,
            batch_size=batch,
        )
        print(f"  {stored} photos in {seconds:.1f} s = {stored / seconds:.2f} photos/s")
        return stored / seconds

    bound = 10 / (mean_delay + LATENCY)
    print(f"concurrency 10, batches of 25, pause {DELAY[0]}-{DELAY[1]} s:")
    concurrent = rate(100, 10, DELAY, 25)
    print(f"  bound 10/({mean_delay}+{LATENCY}) = {bound:.2f}/s -> {concurrent / bound:.2f} of it")
    print("document's sequential loop, same pause:")
    sequential = rate(4, 1, DELAY, 200)
    print(f"  concurrent is {concurrent / sequential:.1f}x")
    print("document's loop as written (no pause at all):")
    literal = rate(4, 1, (0.0, 0.0), 200)
    print(f"  concurrent with the policy is {concurrent / literal:.1f}x")

    origin.latency = 0.0
    peaks = {}
    for products in (200, 2000):
        out = subprocess.run(  # this very module, fixed arguments
            [
                sys.executable,
                "-m",
                "benchmarks.bench_download",
                "--memory",
                str(products),
                proxy,
                str(ca),
                base,
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        )
        figures = json.loads(out.stdout.strip().splitlines()[-1])
        peaks[products] = figures["peak_kib"]
        print(
            f"memory, {products} products x 2 photos (no pause, no latency):"
            f" peak RSS {figures['peak_kib'] / 1024:.1f} MiB"
            f" (after warm-up {figures['warm_kib'] / 1024:.1f} MiB),"
            f" {figures['photos'] / figures['seconds']:.0f} photos/s"
        )
    print(f"peak RSS 2,000 / 200 products: {peaks[2000] / peaks[200]:.2f}x (flat = 1.00)")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--memory":
        _memory_child(sys.argv[2:])
    else:
        main()
