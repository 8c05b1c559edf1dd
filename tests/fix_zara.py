"""A local stand-in for Zara's store locator and in-store stock endpoints.

It speaks the wire format of ``../shared/notes/external-apis.md`` over plain HTTP and HTTPS
(a ``trustme`` certificate for ``localhost``/``127.0.0.1``), and is driven by the real
:class:`~undecat.adapters.zara.ZaraClient`. Tests set the stores it lists and the stock
each colour product has per store, and script faults: a reply (status, headers, raw body)
for one colour product, or for every stock request, consumed in turn before the normal
answer. It counts requests and records user agents and the stores each request asked for.
"""

from __future__ import annotations

import collections
import contextlib
import json
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs
import pytest
import trustme

COUNTRY, LANG = "ae", "en"


@attrs.frozen
class ZaraReply:
    """One scripted answer."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = attrs.field(factory=dict)


def store_entry(store_id: int, *, country: str = "AE", name: str | None = None) -> dict[str, Any]:
    """A store as the locator lists it."""
    return {
        "id": store_id,
        "name": name or f"ZARA {store_id}",
        "commercialName": f"Zara Mall {store_id}",
        "addressLines": [f"Unit {store_id}", "Dubai Mall"],
        "city": "Dubai",
        "countryCode": country,
        "latitude": 25.1972 + store_id / 1e6,
        "longitude": 55.2797,
        "phones": ["+971 4 000 0000"],
    }


class FakeZara:
    """The fake's state: stores, stock, scripted faults, counters."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget stores, stock, scripts and counters."""
        with getattr(self, "lock", threading.Lock()):
            self.stores: list[dict[str, Any]] = []
            # colour product id -> store id -> [(size, stock)]
            self.stock: dict[str, dict[int, list[tuple[str, int | None]]]] = {}
            self.scripts: dict[str, collections.deque[ZaraReply]] = {}
            self.every_stock: collections.deque[ZaraReply] = collections.deque()
            self.locator_script: collections.deque[ZaraReply] = collections.deque()
            self.requests: list[tuple[str, dict[str, list[str]]]] = []
            self.user_agents: list[str] = []
            self.latency = 0.0
            self.in_flight = 0
            self.max_in_flight = 0

    def stock_requests(self) -> list[dict[str, list[str]]]:
        """The query of every stock request, in order."""
        with self.lock:
            return [q for path, q in self.requests if path.endswith("store-product-availability")]

    def answer(  # noqa: PLR0911  # one answer per route and fault
        self, path: str, query: dict[str, list[str]], agent: str
    ) -> ZaraReply:
        """What the fake answers ``path?query``."""
        with self.lock:
            self.requests.append((path, query))
            self.user_agents.append(agent)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            if path == f"/{COUNTRY}/{LANG}/stores-locator/extended/search":
                if self.locator_script:
                    return self.locator_script.popleft()
                return ZaraReply(body=json.dumps(self.stores).encode())
            if path != f"/{COUNTRY}/{LANG}/store-product-availability":
                return ZaraReply(status=404, body=b"not found")
            product = (query.get("productId") or [""])[0]
            if self.every_stock:
                return self.every_stock.popleft()
            script = self.scripts.get(product)
            if script:
                return script.popleft()
            asked = [int(s) for s in query.get("physicalStoreIds", [])]
            known = self.stock.get(product)
            if known is None:
                return ZaraReply(status=404, body=b"")
            entries = [
                {
                    "physicalStoreId": store,
                    "sizesAvailability": [
                        {"sizeId": str(100 + n), "size": size, "stock": stock}
                        for n, (size, stock) in enumerate(known[store])
                    ],
                }
                for store in asked
                if store in known
            ]
            payload = {
                "productId": int(product) if product.isdigit() else product,
                "sizesAvailableAndLocationsByPhysicalStores": entries,
            }
            return ZaraReply(body=json.dumps(payload).encode())


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 10
    # Headers and body go out in two writes: without this, Nagle's algorithm and the
    # client's delayed ACK add ~40 ms to every answer on loopback.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        fake = self.server.fake
        reply = fake.answer(parts.path, parse_qs(parts.query), self.headers.get("User-Agent", ""))
        if fake.latency:
            time.sleep(fake.latency)
        with fake.lock:
            fake.in_flight -= 1
        try:
            self.send_response(reply.status)
            headers = {"Content-Type": "application/json", **reply.headers}
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, fake: FakeZara, tls: ssl.SSLContext | None) -> None:
        self.fake = fake
        self.tls = tls
        super().__init__(("127.0.0.1", 0), _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.tls is not None:
            try:
                request = self.tls.wrap_socket(request, server_side=True)
            except (OSError, ssl.SSLError):
                request.close()
                return
        try:
            super().finish_request(request, client_address)
        finally:
            with contextlib.suppress(OSError):
                request.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        return


class ZaraServer:
    """The fake on HTTP and HTTPS listeners."""

    def __init__(self, ca: trustme.CA) -> None:
        self.fake = FakeZara()
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("localhost", "127.0.0.1").configure_cert(tls)
        self._servers = [_Server(self.fake, None), _Server(self.fake, tls)]
        self._threads = [
            threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            for s in self._servers
        ]
        for thread in self._threads:
            thread.start()

    def base_url(self, *, tls: bool = False, host: str = "127.0.0.1") -> str:
        """``ZARA_BASE_URL`` of this fake."""
        server = self._servers[1 if tls else 0]
        scheme = "https" if tls else "http"
        return f"{scheme}://{host}:{server.server_address[1]}"

    def close(self) -> None:
        """Stop both listeners."""
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(5)


@pytest.fixture(scope="session")
def zara_server(origin_trust: trustme.CA) -> Iterator[ZaraServer]:
    """The fake Zara of this session (its certificate signed by the origin's CA)."""
    server = ZaraServer(origin_trust)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def zara(zara_server: ZaraServer) -> Iterator[ZaraServer]:
    """The session's fake Zara, emptied before and after the test."""
    zara_server.fake.reset()
    yield zara_server
    zara_server.fake.reset()
