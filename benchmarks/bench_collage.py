"""Collage: seconds and peak memory per collage against the codec floor and the document.

Five 1920 x 2880 JPEG photos (the catalog's usual SKU), built three ways, each in a fresh
subprocess so the peak resident memory (``ru_maxrss``, which sees Pillow's C allocations
that tracemalloc cannot) belongs to that way alone:

* ``floor`` -- only what any collage of these photos must do with this library: decode the
  five inputs and encode the finished raster (the raster is loaded, untimed, beforehand;
  it is in the memory figure, since no collage can be encoded without it);
* ``builder`` -- :class:`undecat.adapters.imaging.collage.PillowCollageBuilder`;
* ``process_sku`` -- the source document's ``process_sku`` (section 5), reimplemented
  faithfully below: every photo opened, resized to the tallest height (a same-size
  ``resize`` is Pillow's copy), all kept, pasted, saved at q=95 4:4:4.

A second set, ``mixed`` (two photos at 2880 px high, three at 1920), shows the cost of the
LANCZOS upscaling the floor does not include. Time is the best of the repeats (the median
is printed too: the machine is shared). Memory is the peak resident set (VmHWM, reset
after imports and reading the inputs) above the resident set at that point.

Every variant runs with Pillow's freed-block cache as the collage host sets it
(:func:`~undecat.adapters.imaging.collage.keep_freed_rasters`); ``builder-nocache`` shows
the builder without it.

Every variant runs under Pillow (this interpreter) and, when ``UNDECAT_BENCH_SIMD_PYTHON``
names an interpreter with pillow-simd installed (see docs/benchmarks.md), under pillow-simd.
"""

from __future__ import annotations

import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import PIL
from PIL import Image, ImageFilter

REPEATS = 4
ROUNDS = 3
QUALITY = 95
SETS: dict[str, list[tuple[int, int]]] = {
    "five": [(1920, 2880)] * 5,
    "mixed": [(1920, 2880), (1920, 2880), (1280, 1920), (1280, 1920), (1280, 1920)],
}
VARIANTS = ("floor", "builder", "builder-nocache", "process_sku")
_ROOT = Path(__file__).resolve().parent.parent


# --- the source document's process_sku (section 5), minus the database and S3 calls -------


def process_sku(photos: list[bytes]) -> bytes:
    """The document's collage step, as written there (``s3.download`` -> an in-memory file)."""
    images = [Image.open(io.BytesIO(data)) for data in photos]
    target_height = max(img.height for img in images)
    resized = []
    for img in images:
        ratio = target_height / img.height
        resized.append(
            img.resize((int(img.width * ratio), target_height), Image.Resampling.LANCZOS)
        )
    total_width = sum(r.width for r in resized)
    collage = Image.new("RGB", (total_width, target_height), (255, 255, 255))
    x = 0
    for r in resized:
        collage.paste(r, (x, 0))
        x += r.width
    buf = io.BytesIO()
    collage.save(buf, format="JPEG", quality=QUALITY, subsampling=0)
    return buf.getvalue()


def _document_build(photos: Sequence[bytes]) -> bytes:
    return process_sku(list(photos))


# --- inputs -----------------------------------------------------------------------------------


def _photo(width: int, height: int, seed: int) -> bytes:
    """A photo-like JPEG: smooth gradients, soft shapes and fine grain (~0.5 MB at 1920 x 2880)."""
    grey = Image.linear_gradient("L").resize((width, height))
    radial = Image.radial_gradient("L").resize((width, height))
    noise = Image.effect_noise((width // 4, height // 4), 40 + seed).resize((width, height))
    red = Image.blend(grey, noise, 0.35)
    green = Image.blend(radial, grey.transpose(Image.Transpose.FLIP_TOP_BOTTOM), 0.5)
    blue = Image.blend(noise.filter(ImageFilter.GaussianBlur(3)), radial, 0.6)
    image = Image.merge("RGB", (red, green, blue))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=88)
    return buffer.getvalue()


def _prepare(folder: Path) -> dict[str, list[Path]]:
    sets: dict[str, list[Path]] = {}
    for name, sizes in SETS.items():
        paths = []
        for index, (width, height) in enumerate(sizes):
            path = folder / f"{name}-{index}.jpg"
            path.write_bytes(_photo(width, height, index))
            paths.append(path)
        sets[name] = paths
    return sets


# --- the whole collage job process ------------------------------------------------------------

JOB_SKUS = 24


def _job_worker(variant: str, folder: Path, photo_paths: list[Path]) -> None:
    """One collage job process (process_new) over JOB_SKUS products; print its peak RSS.

    What the collage host's process holds: the interpreter, the host's imports (boto3,
    psycopg, Pillow), Pillow's block cache as the host sets it, the work queue and the
    object store (here in memory and on disk, so that neither S3 nor PostgreSQL is in the
    process's memory figure beyond their client libraries), and the collages themselves.
    """
    import boto3  # noqa: F401, PLC0415  # the host's object store client, as loaded there
    import psycopg  # noqa: F401, PLC0415
    from tests.fakes import FakeClock, MemoryQueue, product  # noqa: PLC0415

    from undecat.adapters.imaging.collage import (  # noqa: PLC0415
        PillowCollageBuilder,
        keep_freed_rasters,
    )
    from undecat.adapters.objectstore.filesystem import FileObjectStore  # noqa: PLC0415
    from undecat.domain.stages import Stage  # noqa: PLC0415
    from undecat.domain.status import ImageStatus  # noqa: PLC0415
    from undecat.jobs.collage import CollageStage  # noqa: PLC0415

    keep_freed_rasters()
    store = FileObjectStore(folder / f"store-{variant}", public_base_url="http://s3.local")
    products = []
    for n in range(1, JOB_SKUS + 1):
        urls = []
        for index, path in enumerate(photo_paths, start=1):
            key = f"originals/zara/{1000 + n}/{index}.jpg"
            urls.append(store.put(key, path.read_bytes(), "image/jpeg"))
        products.append(product(n, image_urls=tuple(urls), image_status=ImageStatus.UPLOADED))
    queue = MemoryQueue(Stage.COLLAGE, products, clock=FakeClock())
    build: Callable[[Sequence[bytes]], bytes] = (
        PillowCollageBuilder(quality=QUALITY) if variant == "builder" else _document_build
    )
    stage = CollageStage(queue, store, build, FakeClock(), owner="bench", batch_size=JOB_SKUS)
    started = time.perf_counter()
    result = stage.process_new()
    elapsed = time.perf_counter() - started
    assert result.metadata["built"] == JOB_SKUS, result
    print(json.dumps({"seconds": elapsed, "peak_mib": _status_mib("VmHWM")}))


def _job(variant: str, folder: Path, photos: list[Path]) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(_ROOT / "src"), str(_ROOT)]))
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_collage", "--job", variant, str(folder)]
        + [str(p) for p in photos],
        env=env,
        cwd=_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def job_process(folder: Path, photos: list[Path], rounds: int = 2) -> None:
    """Peak RSS and time of the whole collage job process, ours against process_sku."""
    best: dict[str, dict[str, float]] = {}
    for _ in range(rounds):
        for variant in ("builder", "process_sku"):  # interleaved
            figures = _job(variant, folder, photos)
            kept = best.setdefault(variant, figures)
            kept["seconds"] = min(kept["seconds"], figures["seconds"])
            kept["peak_mib"] = max(kept["peak_mib"], figures["peak_mib"])
    ours, doc = best["builder"], best["process_sku"]
    print(
        f"\ncollage job process ({JOB_SKUS} SKUs x {len(photos)} photos, whole process):"
        f"\n    builder      {ours['seconds']:6.2f} s  peak RSS {ours['peak_mib']:6.1f} MiB"
        f"\n    process_sku  {doc['seconds']:6.2f} s  peak RSS {doc['peak_mib']:6.1f} MiB"
        f"\n    builder / process_sku: time {ours['seconds'] / doc['seconds']:.2f}x,"
        f" peak RSS {ours['peak_mib'] / doc['peak_mib']:.2f}x"
    )


# --- the worker (one variant, one library, in its own process) -------------------------------


def _status_mib(field: str) -> float:
    """A field of /proc/self/status in MiB: VmRSS now, VmHWM the peak since the last reset."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> None:
    # "5" resets this process's VmHWM to its current RSS (Linux >= 4.0): the peak then
    # covers only what follows. ru_maxrss cannot be reset, and after fork + exec it may
    # still carry the parent's peak.
    Path("/proc/self/clear_refs").write_text("5")


def _worker(variant: str, collage_path: Path, photo_paths: list[Path], repeats: int) -> None:
    from undecat.adapters.imaging.collage import (  # noqa: PLC0415
        PillowCollageBuilder,
        keep_freed_rasters,
    )

    if not variant.endswith("-nocache"):
        keep_freed_rasters()  # as the collage host runs (bootstrap), for every variant alike
    photos = [p.read_bytes() for p in photo_paths]
    builder = PillowCollageBuilder(quality=QUALITY)
    _reset_peak()
    baseline = _status_mib("VmRSS")
    run: Callable[[], object]
    if variant == "floor":
        raster = Image.open(collage_path)
        raster.load()  # untimed, but in the memory figure: no encoder runs without it

        def run() -> object:
            for data in photos:
                with Image.open(io.BytesIO(data)) as image:
                    image.load()
            buffer = io.BytesIO()
            raster.save(buffer, format="JPEG", quality=QUALITY, subsampling=0)
            return buffer.getvalue()

    elif variant.startswith("builder"):

        def run() -> object:
            return builder.build(photos)

    else:

        def run() -> object:
            return process_sku(photos)

    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    print(
        json.dumps(
            {
                "seconds": min(times),
                "median": statistics.median(times),
                "peak_mib": _status_mib("VmHWM") - baseline,
                "pillow": PIL.__version__,
            }
        )
    )


def _measure(
    python: str, variant: str, collage_path: Path, photos: list[Path], repeats: int
) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(_ROOT / "src"), str(_ROOT)]))
    args = [python, "-m", "benchmarks.bench_collage", "--worker", variant, str(collage_path)]
    out = subprocess.run(
        [*args, str(repeats), *map(str, photos)],
        env=env,
        cwd=_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _interleaved(python: str, collage: Path, paths: list[Path]) -> dict[str, dict[str, float]]:
    """Each variant's best over ROUNDS rounds of REPEATS, the variants taking turns.

    Taking turns spreads the load of whatever else runs on the machine over all variants
    instead of letting one burst land on one of them.
    """
    best: dict[str, dict[str, float]] = {}
    for _ in range(ROUNDS):
        for variant in VARIANTS:
            figures = _measure(python, variant, collage, paths, REPEATS)
            kept = best.setdefault(variant, figures)
            if figures["seconds"] < kept["seconds"]:
                kept.update(seconds=figures["seconds"], median=figures["median"])
            kept["peak_mib"] = max(kept["peak_mib"], figures["peak_mib"])
    return best


def _libraries() -> list[tuple[str, str]]:
    libraries = [("Pillow", sys.executable)]
    simd = os.environ.get("UNDECAT_BENCH_SIMD_PYTHON")
    if simd:
        libraries.append(("pillow-simd", simd))
    else:
        print("pillow-simd: skipped (set UNDECAT_BENCH_SIMD_PYTHON to an interpreter with it)")
    return libraries


def main() -> None:
    """Print seconds and peak memory per collage, as ratios to the floor and process_sku."""
    from undecat.adapters.imaging.collage import PillowCollageBuilder  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="bench-collage-") as tmp:
        folder = Path(tmp)
        sets = _prepare(folder)
        job_process(folder, sets["five"])
        if os.environ.get("UNDECAT_BENCH_COLLAGE_JOB_ONLY"):
            return
        for name, paths in sets.items():
            collage = folder / f"{name}-collage.jpg"
            collage.write_bytes(
                PillowCollageBuilder(quality=QUALITY).build([p.read_bytes() for p in paths])
            )
            with Image.open(collage) as image:
                size = image.size
            inputs = sum(p.stat().st_size for p in paths) / 1e6
            print(
                f"\n{name}: {len(paths)} photos ({inputs:.1f} MB), collage {size[0]} x {size[1]}"
                f" ({collage.stat().st_size / 1e6:.1f} MB, q={QUALITY} 4:4:4)"
            )
            for library, python in _libraries():
                figures = _interleaved(python, collage, paths)
                floor, ours, doc = figures["floor"], figures["builder"], figures["process_sku"]
                print(f"  {library} {ours['pillow']}:")
                for variant in VARIANTS:
                    f = figures[variant]
                    print(
                        f"    {variant:16} {f['seconds']:6.3f} s (median {f['median']:.3f})"
                        f"  peak +{f['peak_mib']:6.1f} MiB"
                    )
                print(
                    f"    builder / floor:       time {ours['seconds'] / floor['seconds']:.2f}x,"
                    f" memory {ours['peak_mib'] / floor['peak_mib']:.2f}x"
                )
                print(
                    f"    builder / process_sku: time {ours['seconds'] / doc['seconds']:.2f}x,"
                    f" memory {ours['peak_mib'] / doc['peak_mib']:.2f}x"
                )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--job":
        _job_worker(sys.argv[2], Path(sys.argv[3]), [Path(p) for p in sys.argv[4:]])
    elif len(sys.argv) > 1 and sys.argv[1] == "--worker":
        _worker(sys.argv[2], Path(sys.argv[3]), [Path(p) for p in sys.argv[5:]], int(sys.argv[4]))
    else:
        main()
