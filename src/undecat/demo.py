"""``undecat demo``: the whole pipeline on embedded defaults, no credentials, no services.

It starts a throw-away PostgreSQL (the ``embedded`` extra), keeps objects in a folder (the
filesystem object store), serves generated product photos from a local HTTP origin, writes a
small Zara export in the Apify dataset format, and then runs the real jobs through the
composition root, exactly as the runners do: ``apify_zara --from-file``, ``download_pending``,
``process_new`` and ``ximilar_sync`` (a dry run: no Ximilar token). It ends by printing the
products by status and where the photos, collages and the dry-run requests are.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from PIL import Image, ImageDraw

from undecat.bootstrap import bootstrap
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
def _photo_origin() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Origin)
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
                        "productId": 512_918_856 + n,
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


def run_demo(data_dir: Path, products: int = 12, *, keep: bool = False) -> int:
    """Run the demo in ``data_dir``; return 0 when every job did its work."""
    from undecat.adapters.postgres import (  # noqa: PLC0415
        Database,
        PostgresStatusReport,
        apply_migrations,
    )
    from undecat.adapters.postgres.embedded import EmbeddedPostgres  # noqa: PLC0415
    from undecat.redact import Secret  # noqa: PLC0415

    data_dir = data_dir.resolve()
    shutil.rmtree(data_dir / "objects", ignore_errors=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    print(f"undecat demo in {data_dir}", flush=True)  # noqa: T201
    server = EmbeddedPostgres().start()
    failed: list[str] = []
    try:
        url = Secret(server.dsn)
        apply_migrations(url, "staging")
        with _photo_origin() as origin:
            export = data_dir / "dataset-zara.jsonl"
            _dataset(export, origin, products)
            config = Config.from_env(
                {
                    "STAGING_DB_URL": server.dsn,
                    "DATA_DIR": str(data_dir),
                    # The demo is one host: its objects live in a folder, said explicitly.
                    "OBJECT_STORE_DIR": str(data_dir / "objects"),
                    "ALLOWED_PHOTO_HOSTS": "127.0.0.1",
                    # The demo's origin is plain http on a free port of this machine.
                    "ALLOWED_PHOTO_HTTP_HOSTS": origin.partition("://")[2],
                    "DOWNLOAD_DELAY_MIN": "0",
                    "DOWNLOAD_DELAY_MAX": "0.05",
                    "CONCURRENT_DOWNLOADS": "4",
                }
            )
            steps = [
                ("apify", "apify_zara", ("--from-file", str(export))),
                ("pilot", "", ()),
                ("photo_downloader", "download_pending", ()),
                ("collage", "process_new", ()),
                ("ximilar_sync", "ximilar_sync", ()),
            ]
            for host, job, argv in steps:
                if host == "pilot":
                    # An operator's choice: Zara is a pilot brand of the visual index.
                    with Database(url, max_size=1) as db, db.transaction("pilot") as cur:
                        cur.execute(
                            "UPDATE raw_products SET index_scope = 'pilot' WHERE brand = 'zara'"
                        )
                    continue
                with bootstrap(config, argv=argv) as jobs:
                    result = jobs.job(host, job).run()
                print(  # noqa: T201
                    f"  {host:16} {job:17} {result.status:8} fetched={result.records_fetched}"
                    f" new={result.records_new} updated={result.records_updated}"
                    f" errors={result.records_errors}",
                    flush=True,
                )
                if result.status == RunStatus.FAILED:
                    failed.append(f"{job}: {result.error_message}")
        with Database(url, max_size=1) as db:
            counts = PostgresStatusReport(db).status_counts()
        print("\nproducts by status:")  # noqa: T201
        for row in counts:
            print(  # noqa: T201
                f"  {row.brand:8} image={row.image_status:14} ximilar={row.ximilar_status:8}"
                f" sync={row.sync_status:8} {row.count}"
            )
        objects = data_dir / "objects" / config.s3_bucket
        print(f"\nphotos:   {objects / 'originals'}")  # noqa: T201
        print(f"collages: {objects / 'collages'}")  # noqa: T201
        print(f"ximilar dry-run requests: {data_dir / 'ximilar-dry-run.jsonl'}")  # noqa: T201
    finally:
        server.stop()
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
