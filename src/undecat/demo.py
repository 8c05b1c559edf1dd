"""``undecat demo``: the whole pipeline on embedded defaults, no credentials, no services.

It runs a real PostgreSQL from the ``embedded`` extra whose data folder lives in the demo
folder (two databases on it: staging and production), keeps objects in a folder (the
filesystem object store), serves generated product photos and a small local Zara (store
locator and in-store stock, :mod:`undecat.demo_zara`) on 127.0.0.1, writes a Zara export in
the Apify dataset format, and then runs the real jobs through the composition root, exactly
as the runners do: ``apify_zara --from-file``, ``download_pending``, ``process_new``,
``ximilar_sync`` (a dry run: no Ximilar token), ``stores_refresh`` and
``availability_poll`` (when due by their timers' periods), and ``sync_to_production``. It
writes ``report.html`` (the ``undecat status --html`` page) and prints the funnel and where
the collages and the report are.

The demo keeps its state between runs: a second run in the same folder finds nothing new,
does no work and says so.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from undecat.bootstrap import Resources, bootstrap, embedded_postgres, migrate, open_resources
from undecat.config import Config
from undecat.domain.status import RunStatus

__all__ = ["main", "run_demo"]

_COLOURS = [
    ("800", "Black", (40, 40, 40)),
    ("250", "Ecru", (225, 215, 190)),
    ("400", "Navy", (30, 45, 90)),
]


def _photo(product: int, colour: int, view: int) -> bytes:
    """A 480 x 720 JPEG that says which product, colour and view it is."""
    _, name, rgb = _COLOURS[colour % len(_COLOURS)]
    image = Image.new("RGB", (480, 720), rgb)
    draw = ImageDraw.Draw(image)
    ink = (255, 255, 255) if sum(rgb) < 380 else (0, 0, 0)
    draw.rectangle((60, 120, 420, 600), outline=ink, width=6)
    draw.text((80, 140), f"product {product}\n{name}\nview {view}", fill=ink)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


class _Origin(BaseHTTPRequestHandler):
    """Serves /photos/{product}/{colour}/{view}.jpg; anything else is a 404."""

    def do_GET(self) -> None:
        parts = self.path.split("?", 1)[0].strip("/").split("/")
        try:
            _, product, colour, view = parts
            body = _photo(int(product), int(colour), int(view.removesuffix(".jpg")))
        except ValueError:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002  # stdlib name
        """Keep the demo's output readable."""


@contextmanager
def _photo_origin(port: int = 0) -> Iterator[str]:
    """Serve the photos on ``port`` (any free one when it is 0 or taken); yield the origin."""
    try:
        server = ThreadingHTTPServer(("127.0.0.1", port), _Origin)
    except OSError:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Origin)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _dataset(path: Path, origin: str, products: int) -> None:
    """Write ``products`` items in the datasaurus/zara format, one JSON object per line."""
    with path.open("w", encoding="utf-8") as out:
        for n in range(products):
            colours = 1 + n % 2
            item = {
                "id": 512_913_640 + n,
                "reference": f"0{2086797 + n}-V2026",
                "brand": "Zara",
                "name": f"DEMO BLAZER {n + 1}",
                "description": "Blazer with a notched lapel collar and long sleeves.",
                "price": 69_900 + 1_000 * n,
                "category": "woman-outerwear",
                "colors": ", ".join(name for _, name, _ in _COLOURS[:colours]),
                "sizes": "XS, S, M, L",
                "detailedComposition": {
                    "parts": [
                        {
                            "description": "outer shell",
                            "components": [{"material": "polyester", "percentage": "100%"}],
                        }
                    ]
                },
                "colorsSizesImagesJSON": [
                    {
                        "id": code,
                        "name": name,
                        # Each colour is a product of its own in Zara's stock endpoint.
                        "productId": 512_918_856 + 10 * n + c,
                        "xmedia": [f"{origin}/photos/{n}/{c}/{v}.jpg?w={{width}}" for v in (1, 2)],
                        "sizes": [
                            {
                                "name": s,
                                "sku": 1000 * n + i,
                                "availability": "in_stock",
                                "price": 69_900,
                            }
                            for i, s in enumerate(("XS", "S", "M", "L"))
                        ],
                    }
                    for c, (code, name, _) in enumerate(_COLOURS[:colours])
                ],
            }
            out.write(json.dumps(item) + "\n")


#: The demo's staging and production databases on its embedded server.
_STAGING_DB, _PRODUCTION_DB = "undecat_staging", "undecat_production"
#: Jobs the demo runs only when their timer would (their period passed since the last
#: success) or when an earlier step of this run changed something: a dry run of Ximilar
#: changes nothing, and the shops' stock is polled hourly, not on every demo run.
_TIMED = {"ximilar_sync": "7 days", "stores_refresh": "1 day", "availability_poll": "1 hour"}


def _steps(export: Path) -> list[tuple[str, str, tuple[str, ...]]]:
    """(host, job, argv) of the whole cycle in schedule order ("pilot" is the operator's step)."""
    return [
        ("apify", "apify_zara", ("--from-file", str(export))),
        ("pilot", "", ()),
        ("photo_downloader", "download_pending", ()),
        ("collage", "process_new", ()),
        ("ximilar_sync", "ximilar_sync", ()),
        ("scraper", "stores_refresh", ()),
        ("scraper", "availability_poll", ()),
        ("scraper", "sync_to_production", ()),
    ]


def _state(data_dir: Path) -> dict[str, Any]:
    path = data_dir / "demo-state.json"
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _ensure_databases(admin_dsn: str) -> None:
    """Create the staging and production databases on the demo's server when missing."""
    import psycopg  # noqa: PLC0415

    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        have = {r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()}
        for name in (_STAGING_DB, _PRODUCTION_DB):
            if name not in have:
                conn.execute(f'CREATE DATABASE "{name}"'.encode())


def _due(db: Any, job: str) -> bool:
    """Whether ``job`` has not succeeded within its timer's period (then it runs)."""
    with db.transaction("is it due") as cur:
        cur.execute(
            "SELECT count(*) AS n FROM scraper_logs WHERE scraper_name = %s"
            " AND status = 'success' AND completed_at > now() - %s::interval",
            (job, _TIMED[job]),
        )
        row = cur.fetchone()
    return not row or not row["n"]


def _work(job: str, result: Any) -> int:
    """How much the job changed: an unchanged re-import of the export counts as none."""
    changed = result.records_new + result.records_updated + result.records_errors
    done = changed if job.startswith("apify_") else changed + result.records_fetched
    return int(done)


def _write_report(resources: Resources, path: Path) -> str:
    """Write the status page to ``path``; return the funnel lines of the text report."""
    from undecat.ops.render import render_html, render_text  # noqa: PLC0415

    report = resources.ops_report().report()
    path.write_text(render_html(resources.with_thumbnails(report)), encoding="utf-8")
    text = render_text(report)
    return text[text.index("funnel") : text.index("work per stage")].rstrip()


def _config(data_dir: Path, staging: str, production: str, origin: str, zara: str) -> Config:
    """The configuration every host of the demo shares (one machine, local fakes)."""
    return Config.from_env(
        {
            "STAGING_DB_URL": staging,
            "PRODUCTION_DB_URL": production,
            "DATA_DIR": str(data_dir),
            # The demo is one host: its objects live in a folder, said explicitly.
            "OBJECT_STORE_DIR": str(data_dir / "objects"),
            "ALLOWED_PHOTO_HOSTS": "127.0.0.1",
            # The demo's origin is plain http on a free port of this machine.
            "ALLOWED_PHOTO_HTTP_HOSTS": origin.partition("://")[2],
            "DOWNLOAD_DELAY_MIN": "0",
            "DOWNLOAD_DELAY_MAX": "0.05",
            "CONCURRENT_DOWNLOADS": "4",
            "ZARA_BASE_URL": zara,
            "ZARA_USER_AGENT": "undecat-demo",
            # Politeness is for zara.com; the demo's Zara is a local fake.
            "AVAILABILITY_DELAY_MIN": "0",
            "AVAILABILITY_DELAY_MAX": "0",
        }
    )


def _run_steps(
    config: Config, db: Any, export: Path, work: dict[str, int], failed: list[str]
) -> None:
    """Run the cycle's jobs in order; note each one's work in ``work``, failures in ``failed``."""
    for host, job, argv in _steps(export):
        if host == "pilot":
            # An operator's choice: Zara is a pilot brand of the visual index.
            with db.transaction("pilot") as cur:
                cur.execute(
                    "UPDATE raw_products SET index_scope = 'pilot' WHERE brand = 'zara'"
                    " AND index_scope IS DISTINCT FROM 'pilot'"
                )
                work["pilot"] = cur.rowcount
            continue
        if job in _TIMED and not any(work.values()) and not _due(db, job):
            print(f"  {host:16} {job:18} not due (ran within {_TIMED[job]}; nothing new)")  # noqa: T201
            continue
        with bootstrap(config, argv=argv) as jobs:
            result = jobs.job(host, job).run()
        work[job] = _work(job, result)
        print(  # noqa: T201
            f"  {host:16} {job:18} {result.status:8} fetched={result.records_fetched}"
            f" new={result.records_new} updated={result.records_updated}"
            f" errors={result.records_errors}",
            flush=True,
        )
        if result.status == RunStatus.FAILED:
            failed.append(f"{job}: {result.error_message}")


def run_demo(data_dir: Path, products: int = 12, *, keep: bool = False) -> int:
    """Run the demo in ``data_dir``; return 0 when every job did its work (or had none)."""
    from undecat.demo_zara import zara_fake  # noqa: PLC0415
    from undecat.redact import Secret  # noqa: PLC0415

    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    state = _state(data_dir)
    again = bool(state)
    print(  # noqa: T201
        f"undecat demo in {data_dir}" + (" (again: its database and objects are kept)" * again),
        flush=True,
    )
    # The server's data folder lives in the demo folder: the next run starts where this ended.
    (data_dir / "postgres").mkdir(exist_ok=True)
    server = embedded_postgres(data_dir / "postgres").start()
    failed: list[str] = []
    work: dict[str, int] = {}
    try:
        _ensure_databases(server.dsn)
        staging = Secret(server.dsn_for(_STAGING_DB))
        production = server.dsn_for(_PRODUCTION_DB)
        migrate(staging, "staging")
        migrate(Secret(production), "production")
        with (
            _photo_origin(int(state.get("photo_port", 0))) as origin,
            zara_fake() as zara,
        ):
            port = int(origin.rpartition(":")[2])
            if again and port != state.get("photo_port"):
                print(f"  the photo origin moved to port {port}: photos are fetched anew")  # noqa: T201
            (data_dir / "demo-state.json").write_text(
                json.dumps({"photo_port": port}), encoding="utf-8"
            )
            export = data_dir / "dataset-zara.jsonl"
            _dataset(export, origin, products)
            config = _config(data_dir, staging.reveal(), production, origin, zara)
            with open_resources(config) as resources:
                _run_steps(config, resources.staging_db(), export, work, failed)
                report = data_dir / "report.html"
                funnel = _write_report(resources, report)
        print(f"\n{funnel}")  # noqa: T201
        objects = data_dir / "objects" / config.s3_bucket
        print(f"\ncollages: {objects / 'collages'}")  # noqa: T201
        print(f"photos:   {objects / 'originals'}")  # noqa: T201
        print(f"report:   {report}")  # noqa: T201
        print(f"ximilar dry-run requests: {data_dir / 'ximilar-dry-run.jsonl'}")  # noqa: T201
        print(  # noqa: T201
            f"databases: {_STAGING_DB}, {_PRODUCTION_DB} (PostgreSQL in {data_dir / 'postgres'})"
        )
    finally:
        server.stop()
    done = sum(work.values())
    if not failed and again and done == 0:
        print("\nnothing changed since the last run: no work done")  # noqa: T201
    elif not failed:
        print(f"\n{done} change(s) made")  # noqa: T201
    for failure in failed:
        print(f"undecat demo: {failure}", file=sys.stderr)  # noqa: T201
    if not keep:
        (data_dir / "dataset-zara.jsonl").unlink(missing_ok=True)
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``undecat demo``."""
    parser = argparse.ArgumentParser(prog="undecat demo", description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default="data/demo", help="where objects and logs go")
    parser.add_argument("--products", type=int, default=12, help="how many products to collect")
    parser.add_argument("--keep", action="store_true", help="keep the generated export file")
    args = parser.parse_args(argv)
    return run_demo(Path(args.data_dir), args.products, keep=args.keep)
