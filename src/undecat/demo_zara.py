"""The demo's local Zara: the store locator and in-store stock endpoints on 127.0.0.1.

It speaks the wire format the scraper host's :class:`~undecat.adapters.zara.ZaraClient`
reads (``/{country}/{lang}/stores-locator/extended/search`` and
``/{country}/{lang}/store-product-availability``), over plain HTTP on a free port of this
machine. Its three Dubai stores and the stock of every colour product are derived from the
ids alone, so that two runs of the demo see the same shelves.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["SIZES", "STORES", "stock", "zara_fake"]

#: The demo's stores: id, name, mall.
STORES = (
    (11_740, "ZARA DUBAI MALL", "The Dubai Mall"),
    (11_741, "ZARA MALL OF THE EMIRATES", "Mall of the Emirates"),
    (11_742, "ZARA CITY CENTRE DEIRA", "City Centre Deira"),
)
#: The sizes every demo product comes in.
SIZES = ("XS", "S", "M", "L")


def stock(product_id: int, store_id: int) -> list[tuple[str, int]]:
    """How many of each size the store holds of the colour product (0 is out of stock)."""
    return [(size, (product_id + store_id + n) % 3) for n, size in enumerate(SIZES)]


def _store(index: int, store_id: int, name: str, mall: str) -> dict[str, Any]:
    return {
        "id": store_id,
        "name": name,
        "commercialName": mall,
        "addressLines": [f"Unit {index + 1}", mall],
        "city": "Dubai",
        "countryCode": "AE",
        "latitude": 25.1972 + index / 100,
        "longitude": 55.2797 - index / 100,
        "phones": ["+971 4 000 0000"],
    }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        segments = parts.path.strip("/").split("/")
        status: int = 404
        payload: Any = {}
        if segments[2:] == ["stores-locator", "extended", "search"]:
            status = 200
            payload = [_store(n, *entry) for n, entry in enumerate(STORES)]
        elif segments[2:] == ["store-product-availability"]:
            product = (query.get("productId") or [""])[0]
            if product.isdigit():
                asked = [int(s) for s in query.get("physicalStoreIds", []) if s.isdigit()]
                known = {store_id for store_id, _, _ in STORES}
                status = 200
                payload = {
                    "productId": int(product),
                    "sizesAvailableAndLocationsByPhysicalStores": [
                        {
                            "physicalStoreId": store_id,
                            "sizesAvailability": [
                                {"sizeId": str(100 + n), "size": size, "stock": count}
                                for n, (size, count) in enumerate(stock(int(product), store_id))
                            ],
                        }
                        for store_id in asked
                        if store_id in known
                    ],
                }
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002  # stdlib name
        """Keep the demo's output readable."""


@contextmanager
def zara_fake() -> Iterator[str]:
    """Serve the fake on a free loopback port; yield its ``ZARA_BASE_URL``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
