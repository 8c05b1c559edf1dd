"""A local photo origin standing in for the brands' CDNs, over HTTP and HTTPS.

Tests script what each path answers: a status, headers, a body, a delay before answering,
a body sent slowly or cut off mid-way, a sequence of answers (429 then 200). The origin
counts requests per path, records user agents and the most requests it had in flight at
once. HTTPS uses a certificate for ``localhost`` and ``127.0.0.1`` from a throw-away
``trustme`` CA; ``origin_ca`` is that CA's PEM file (what ``PROXY_CA_BUNDLE`` points at).

The origin listens on 127.0.0.1; tests address it as ``localhost`` so that the allowed-hosts
check has a name to match and a second name (``127.0.0.1``) that is *not* allowed.
"""

from __future__ import annotations

import collections
import contextlib
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import attrs
import pytest
import trustme

ORIGIN_HOST = "localhost"


@attrs.frozen
class Reply:
    """One scripted answer of the origin."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = attrs.field(factory=dict)
    delay: float = 0.0  # seconds before the status line
    cut_after: int | None = None  # announce the whole body, send this many bytes, hang up
    trickle: float = 0.0  # seconds between body chunks
    chunk: int = 64 * 1024
    length: bool = True  # send Content-Length (else the body ends when the connection closes)
    gate: threading.Event | None = None  # answer only once this is set (at most 30 s)
    # Send these bytes as the whole answer (status line included), ``trickle`` s apart.
    raw: tuple[bytes, ...] = ()


class Origin:
    """The scripted origin: :meth:`serve` a path, then fetch :meth:`url` through the proxy."""

    def __init__(self, ca: trustme.CA) -> None:
        self._lock = threading.Lock()
        self._routes: dict[str, collections.deque[Reply]] = {}
        self.hits: collections.Counter[str] = collections.Counter()
        self.user_agents: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.latency = 0.0  # added to every answer (for the benchmark)
        self._default: Reply | None = None
        cert = ca.issue_cert(ORIGIN_HOST, "127.0.0.1")
        self._tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(self._tls)
        self._http = _Server(("127.0.0.1", 0), self, None)
        self._https = _Server(("127.0.0.1", 0), self, self._tls)
        self._threads = [
            threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            for s in (self._http, self._https)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def http_port(self) -> int:
        """The port of the plain-HTTP listener."""
        return int(self._http.server_address[1])

    @property
    def https_port(self) -> int:
        """The port of the HTTPS listener."""
        return int(self._https.server_address[1])

    @property
    def allowed_hosts(self) -> tuple[str, ...]:
        """ALLOWED_PHOTO_HOSTS admitting this origin's HTTPS listener (a non-default port)."""
        return (f"{ORIGIN_HOST}:{self.https_port}",)

    @property
    def http_hosts(self) -> tuple[str, ...]:
        """ALLOWED_PHOTO_HTTP_HOSTS admitting this origin's plain-HTTP listener."""
        return (f"{ORIGIN_HOST}:{self.http_port}",)

    def url(self, path: str, *, tls: bool = False, host: str = ORIGIN_HOST) -> str:
        """The URL of ``path`` on this origin."""
        if tls:
            return f"https://{host}:{self.https_port}{path}"
        return f"http://{host}:{self.http_port}{path}"

    def serve(self, path: str, *replies: Reply) -> None:
        """Answer ``path`` with ``replies`` in turn; the last one repeats."""
        if not replies:
            raise ValueError("at least one reply")
        with self._lock:
            self._routes[path] = collections.deque(replies)

    def serve_default(self, reply: Reply | None) -> None:
        """Answer every path without a route of its own with ``reply`` (None: 404)."""
        with self._lock:
            self._default = reply

    def reset(self) -> None:
        """Forget every route and count."""
        with self._lock:
            self._routes.clear()
            self.hits.clear()
            self.user_agents.clear()
            self.in_flight = 0
            self.max_in_flight = 0
            self.latency = 0.0
            self._default = None

    def _next_reply(self, path: str, user_agent: str) -> Reply:
        with self._lock:
            self.hits[path] += 1
            self.user_agents.append(user_agent)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            replies = self._routes.get(path)
            if not replies:
                return self._default or Reply(status=404, body=b"no such photo")
            return replies.popleft() if len(replies) > 1 else replies[0]

    def _done(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def close(self) -> None:
        """Stop both listeners."""
        for server in (self._http, self._https):
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(5)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(
        self, address: tuple[str, int], origin: Origin, tls: ssl.SSLContext | None
    ) -> None:
        self.origin = origin
        self.tls = tls
        super().__init__(address, _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake runs in the connection's own thread, not in the accept loop.
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
        # Clients hanging up (timeouts, size caps) are part of the tests, not errors.
        return


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 10  # an idle keep-alive connection is closed after this

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return

    def do_GET(self) -> None:
        origin = self.server.origin
        reply = origin._next_reply(self.path, self.headers.get("User-Agent", ""))
        try:
            self._answer(reply, origin.latency)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, TimeoutError):
            self.close_connection = True

    def _answer(self, reply: Reply, latency: float) -> None:
        if reply.gate is not None:
            reply.gate.wait(30)
        wait = reply.delay + latency
        if wait > 0:
            time.sleep(wait)
        # Done "in flight" before answering: the client's slot is held until it has read the
        # answer, so this count can never exceed the client's concurrency by a race.
        self.server.origin._done()
        if reply.raw:
            self.close_connection = True
            for n, piece in enumerate(reply.raw):
                if n and reply.trickle:
                    time.sleep(reply.trickle)
                self.wfile.write(piece)
                self.wfile.flush()
            return
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if reply.length:
            self.send_header("Content-Length", str(len(reply.body)))
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        body = reply.body if reply.cut_after is None else reply.body[: reply.cut_after]
        for start in range(0, len(body), reply.chunk):
            if reply.trickle and start:
                time.sleep(reply.trickle)
            self.wfile.write(body[start : start + reply.chunk])
            self.wfile.flush()
        if reply.cut_after is not None:
            self.close_connection = True
            # Hang up without finishing the body: a reset, not an orderly end of message.
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)


@pytest.fixture(scope="session")
def origin_trust() -> trustme.CA:
    """The throw-away CA that signs the origin's certificate."""
    return trustme.CA()


@pytest.fixture(scope="session")
def origin_ca(origin_trust: trustme.CA) -> Iterator[Path]:
    """The PEM file of the origin's CA (what ``PROXY_CA_BUNDLE`` points at in tests)."""
    folder = Path(tempfile.mkdtemp(prefix="undecat-origin-ca-"))
    path = folder / "ca.pem"
    origin_trust.cert_pem.write_to_path(str(path))
    yield path
    path.unlink(missing_ok=True)
    folder.rmdir()


@pytest.fixture(scope="session")
def origin_server(origin_trust: trustme.CA) -> Iterator[Origin]:
    """The origin of this test session."""
    server = Origin(origin_trust)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def origin(origin_server: Origin) -> Iterator[Origin]:
    """The session's origin with no routes and zeroed counters."""
    origin_server.reset()
    yield origin_server
    origin_server.reset()
