"""The :class:`~undecat.ports.PhotoFetcher` on urllib3, through the residential proxy.

One :class:`ProxyPhotoFetcher` per process holds one shared connection pool (a
``ProxyManager`` carrying the ``PROXY_URL`` credentials as a ``Proxy-Authorization`` header,
or a plain ``PoolManager`` when no proxy is configured). Each :meth:`~ProxyPhotoFetcher.fetch`:

1. admits the URL only if it is https on the default port of an allowed host, or a scheme
   and port the configuration allows for that host (:mod:`.urls`);
2. takes one of the ``CONCURRENT_DOWNLOADS`` slots after a random pause (:mod:`.politeness`);
3. sends one GET with a rotated browser user agent; TLS is always verified (system CAs plus
   ``PROXY_CA_BUNDLE``);
4. follows redirects itself, each target checked like the first URL (at most five);
5. on 429/503 gives the slot back and waits along ``BACKOFF_SCHEDULE``, honouring
   ``Retry-After`` (:mod:`.backoff`);
6. refuses any ``Content-Encoding`` but identity before reading the body (the body is
   never decoded, so a compression bomb costs nothing), then streams the body, stopping as
   soon as it passes ``MAX_PHOTO_BYTES`` or the time limit.

Each request has one absolute deadline, ``DOWNLOAD_TIMEOUT`` from its start (connect, proxy
tunnel, TLS, headers and body together), never a per-read time-out that a trickling origin
could renew byte by byte: a watchdog (:class:`_Watch`) shuts the request's socket down
when the deadline passes, whatever phase it is in. The caller's ``deadline`` (the product's
budget, ``PRODUCT_TIMEOUT``) bounds the whole fetch, backoff waits included. Failures
become :class:`~undecat.errors.PhotoError` or :class:`~undecat.errors.ProxyError` by the
rule in :mod:`.classify`.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import os
import random
import socket
import threading
from collections.abc import Callable, Sequence
from http import HTTPStatus
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urljoin

import attrs
import urllib3
from urllib3 import exceptions as u3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from undecat.adapters.http.backoff import BUSY_STATUSES, Busy, retry_after_seconds, retrying
from undecat.adapters.http.classify import (
    TunnelRefusedError,
    request_failure,
    status_failure,
    tunnel_status,
)
from undecat.adapters.http.politeness import Politeness
from undecat.adapters.http.pool import pool_manager, tls_context
from undecat.adapters.http.urls import AllowedHosts
from undecat.adapters.http.useragents import USER_AGENTS, UserAgentRotation
from undecat.errors import PhotoError, UndecatError
from undecat.ports import Clock
from undecat.redact import Secret, redact_url

__all__ = ["FetchSettings", "Photo", "ProxyPhotoFetcher"]

_P = TypeVar("_P", bound=urllib3.PoolManager)
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024
# Headers of a browser loading an image; JPEG first, because that is what we store.
_ACCEPT = "image/jpeg,image/png;q=0.9,image/webp;q=0.8,image/*;q=0.7,*/*;q=0.5"


@attrs.frozen
class FetchSettings:
    """What the fetcher needs (read from the configuration by ``undecat.settings``)."""

    proxy_url: Secret | None
    allowed_hosts: tuple[str, ...]
    http_hosts: tuple[str, ...] = ()
    ca_bundle: Path | None = None
    timeout: float = 30.0
    max_bytes: int = 25 * 1024 * 1024
    backoff: tuple[float, ...] = (5.0, 15.0, 45.0)
    concurrency: int = 10
    delay_min: float = 0.5
    delay_max: float = 2.0
    max_redirects: int = 5
    connect_timeout: float = 10.0


@attrs.frozen
class Photo:
    """A fetched photo (the :class:`~undecat.ports.FetchedPhoto` of this adapter)."""

    url: str
    content: bytes = attrs.field(repr=lambda b: f"<{len(b)} bytes>")
    content_type: str | None


@attrs.frozen
class _Redirect:
    location: str


@attrs.frozen
class _Request:
    url: str
    headers: dict[str, str]
    timeout: urllib3.Timeout
    deadline: float  # monotonic
    shown: str  # the URL as errors show it
    limit: str  # which time limit the deadline is, for messages


@attrs.frozen
class _Status:
    status: int
    reason: str
    retry_after: str | None
    tunnel: bool


@attrs.define
class _Walk:
    """Where a fetch has got to: the URL it asks now and the redirects followed so far."""

    current: str
    redirects: int = 0


class ProxyPhotoFetcher:
    """Fetches photos politely through the proxy; see the module docstring."""

    def __init__(
        self,
        settings: FetchSettings,
        *,
        clock: Clock,
        rng: random.Random | None = None,
        user_agents: Sequence[str] = USER_AGENTS,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._hosts = AllowedHosts(settings.allowed_hosts, settings.http_hosts)
        self._agents = UserAgentRotation(user_agents)
        self.politeness = Politeness(
            limit=settings.concurrency,
            delay_min=settings.delay_min,
            delay_max=settings.delay_max,
            clock=clock,
            rng=rng,
        )
        self._pool = _build_pool(settings)

    def __repr__(self) -> str:
        proxy = (
            "None"
            if self._settings.proxy_url is None
            else redact_url(self._settings.proxy_url.reveal())
        )
        return f"ProxyPhotoFetcher(proxy={proxy!r}, hosts={sorted(self._hosts.hosts)!r})"

    def close(self) -> None:
        """Close every pooled connection."""
        self._pool.clear()

    def fetch(self, url: str, *, deadline: float) -> Photo:
        """Fetch ``url`` before monotonic time ``deadline``; PhotoError or ProxyError."""
        walk = _Walk(self._hosts.check(url))
        shown = _shown(url)

        def before_wait(seconds: float, busy: Busy) -> None:
            if self._clock.monotonic() + seconds >= deadline:
                raise PhotoError(
                    f"{busy.reason}: asked to wait {seconds:g} s, past the product's time limit",
                    url=shown,
                )

        policy = retrying(self._settings.backoff, self._clock, before_wait=before_wait)
        try:
            return policy(self._follow, walk, url, deadline)
        except Busy as exc:
            waited = ", ".join(f"{s:g}" for s in self._settings.backoff)
            raise PhotoError(
                f"{exc.reason} still after backing off {waited} s", url=shown
            ) from None

    def _follow(self, walk: _Walk, url: str, deadline: float) -> Photo:
        """One attempt: follow redirects to a photo; :class:`Busy` for a 429/503 answer."""
        while True:
            if self._clock.monotonic() >= deadline:
                raise PhotoError("too slow: the product's time limit ran out", url=_shown(url))
            with self.politeness.slot():
                answer = self._attempt(walk.current, deadline)
            if isinstance(answer, Photo):
                return Photo(url=url, content=answer.content, content_type=answer.content_type)
            if isinstance(answer, _Redirect):
                walk.redirects += 1
                if walk.redirects > self._settings.max_redirects:
                    raise PhotoError(
                        f"more than {self._settings.max_redirects} redirects", url=_shown(url)
                    )
                target = urljoin(walk.current, answer.location)
                try:
                    walk.current = self._hosts.check(target)
                except PhotoError as exc:
                    raise PhotoError(
                        f"redirected to a refused URL: {exc}", url=_shown(url)
                    ) from exc
                continue
            if answer.status not in BUSY_STATUSES:
                raise status_failure(
                    answer.status, answer.reason, _shown(url), tunnel=answer.tunnel
                )
            asked = retry_after_seconds(answer.retry_after, self._clock.now())
            raise Busy(f"HTTP {answer.status}", retry_after=asked)

    def _attempt(self, url: str, product_deadline: float) -> Photo | _Redirect | _Status:
        """Send one request and read its answer within the photo's time limit."""
        photo_deadline = self._clock.monotonic() + self._settings.timeout
        deadline = min(photo_deadline, product_deadline)
        limit = (
            "the product's time limit (PRODUCT_TIMEOUT)"
            if product_deadline < photo_deadline
            else f"the photo's time limit (DOWNLOAD_TIMEOUT {self._settings.timeout:g} s)"
        )
        remaining = deadline - self._clock.monotonic()
        shown = _shown(url)
        if remaining <= 0:
            raise PhotoError(f"too slow: {limit} ran out", url=shown)
        headers = {
            "User-Agent": self._agents.next(),
            "Accept": _ACCEPT,
            "Accept-Language": "en-US,en;q=0.9",
            "Accept-Encoding": "identity",
        }
        timeout = urllib3.Timeout(
            connect=min(self._settings.connect_timeout, remaining), read=remaining
        )
        request = _Request(url, headers, timeout, deadline, shown, limit)
        with _Watch(remaining) as watch:
            return self._exchange(request, watch)

    def _exchange(self, request: _Request, watch: _Watch) -> Photo | _Redirect | _Status:
        """Send the request and read the answer while ``watch`` guards the deadline."""
        shown = request.shown
        too_slow = f"too slow: {request.limit} ran out"
        response = self._send(request, watch)
        if isinstance(response, _Status):
            return response
        complete = False
        try:
            if response.status in (200, 203):
                _refuse_encoded(response, shown)
                content = self._read_body(response, request.deadline, shown, request.limit)
                if watch.expired:
                    raise PhotoError(f"{too_slow} mid-body", url=shown)
                complete = True
                return Photo(
                    url=request.url,
                    content=content,
                    content_type=response.headers.get("Content-Type"),
                )
            if response.status in _REDIRECTS:
                location = response.headers.get("Location")
                if not location:
                    raise PhotoError(
                        f"HTTP {response.status} redirect without a Location", url=shown
                    )
                return _Redirect(location)
            return _Status(
                response.status,
                response.reason or "",
                retry_after=response.headers.get("Retry-After"),
                tunnel=False,
            )
        except u3.HTTPError as exc:
            if watch.expired:
                raise PhotoError(f"{too_slow} mid-body", url=shown) from exc
            raise _failure(exc, shown, request.limit) from exc
        finally:
            if not complete:
                # Whatever is left of the body is not read: the connection cannot be reused.
                response.close()
            response.release_conn()

    def _send(self, request: _Request, watch: _Watch) -> urllib3.BaseHTTPResponse | _Status:
        """Send the GET; its answer's headers, or the proxy's refusal of the tunnel."""
        too_slow = f"too slow: {request.limit} ran out"
        try:
            return self._pool.urlopen(
                "GET",
                request.url,
                headers=request.headers,
                redirect=False,
                retries=False,
                preload_content=False,
                decode_content=False,
                timeout=request.timeout,
            )
        except u3.ProxyError as exc:
            if watch.expired:
                raise PhotoError(too_slow, url=request.shown) from exc
            tunnel = tunnel_status(exc)
            if tunnel is None:
                raise request_failure(exc, request.shown) from exc
            return _Status(tunnel[0], tunnel[1], retry_after=None, tunnel=True)
        except u3.HTTPError as exc:
            if watch.expired:
                raise PhotoError(too_slow, url=request.shown) from exc
            raise _failure(exc, request.shown, request.limit) from exc

    def _read_body(
        self, response: urllib3.BaseHTTPResponse, deadline: float, shown: str, limit: str
    ) -> bytes:
        """Stream the body, refusing it past the size cap or the time limit."""
        cap = self._settings.max_bytes
        declared = response.headers.get("Content-Length")
        if declared and declared.strip().isdigit() and int(declared) > cap:
            raise PhotoError(f"too large: {int(declared)} bytes, the limit is {cap}", url=shown)
        body = bytearray()
        while True:
            remaining = deadline - self._clock.monotonic()
            if remaining <= 0:
                raise PhotoError(f"too slow: {limit} ran out mid-body", url=shown)
            _limit_next_read(response, remaining)
            # What has arrived, undecoded, so the clock is checked often.
            chunk = response.read1(_CHUNK, decode_content=False)
            if not chunk:
                return bytes(body)
            body += chunk
            if len(body) > cap:
                raise PhotoError(f"too large: more than {cap} bytes", url=shown)


def _refuse_encoded(response: urllib3.BaseHTTPResponse, shown: str) -> None:
    """Refuse a body in any Content-Encoding but identity, before a byte of it is read."""
    encodings = [
        part.strip().lower()
        for value in response.headers.getlist("Content-Encoding")
        for part in value.split(",")
        if part.strip()
    ]
    refused = [e for e in encodings if e != "identity"]
    if refused:
        raise PhotoError(
            f"the photo came with Content-Encoding {', '.join(refused)};"
            " only identity is accepted (we ask for it)",
            url=shown,
        )


_current = threading.local()


class _Watch:
    """One request's absolute deadline: when it passes, the request's sockets are shut down.

    While a watch is open in a thread, every connection that thread opens or reuses hands
    the watch a duplicate of its socket's descriptor (:class:`_WatchedConnection`); at the
    deadline a timer thread shuts those sockets down, so a read blocked in connect, the
    proxy tunnel, the TLS handshake, the headers or the body returns at once. The
    duplicates are the watch's own (closed when it ends), so a descriptor number reused
    elsewhere is never touched.
    """

    def __init__(self, seconds: float) -> None:
        self.expired = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._seen: set[int] = set()
        self._timer = threading.Timer(max(seconds, 0.0), self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Watch:
        _current.watch = self
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        _current.watch = None
        with self._lock:
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()

    def adopt(self, sock: socket.socket | None) -> None:
        """Watch ``sock`` (shut it down at once if the deadline has already passed)."""
        if sock is None:
            return
        with self._lock:
            try:
                fileno = sock.fileno()
                if fileno < 0 or id(sock) in self._seen:
                    return
                duplicate = socket.socket(fileno=os.dup(fileno))
            except OSError:
                return
            self._seen.add(id(sock))
            self._sockets.append(duplicate)
            if self.expired:
                _shut(duplicate)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by its owner
        sock.shutdown(socket.SHUT_RDWR)


def _watch_of_thread() -> _Watch | None:
    watch: _Watch | None = getattr(_current, "watch", None)
    return watch


class _WatchedConnection(HTTPConnection):
    """An HTTP connection that hands its socket to the thread's :class:`_Watch`."""

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        watch = _watch_of_thread()
        if watch is not None:
            watch.adopt(sock)
        return sock

    def request(self, *args: Any, **kwargs: Any) -> None:
        watch = _watch_of_thread()
        if watch is not None:
            watch.adopt(self.sock)  # a reused connection (a new one adopted in _new_conn)
        super().request(*args, **kwargs)


class _TunnelAnswer(http.client.HTTPResponse):
    """The proxy's answer to a ``CONNECT``: its status line is handed to ``on_status``."""

    def __init__(
        self, sock: socket.socket, *, method: str | None, on_status: Callable[[int, str], None]
    ) -> None:
        super().__init__(sock, method=method)
        self._on_status = on_status

    def _read_status(self) -> tuple[str, int, str]:
        version, status, reason = super()._read_status()  # type: ignore[misc]
        self._on_status(status, reason.strip())
        return version, status, reason


class _WatchedTLSConnection(_WatchedConnection, HTTPSConnection):
    """An HTTPS connection that hands its socket to the thread's :class:`_Watch`.

    The watching comes from :class:`_WatchedConnection`, before ``HTTPSConnection`` in the
    method order, so its ``super()`` reaches the TLS connection's own methods. A tunnel the
    proxy refuses raises :class:`TunnelRefusedError` with the proxy's status and reason as
    attributes (the standard library only puts them in its message).
    """

    def _tunnel(self) -> None:
        answers: list[tuple[int, str]] = []
        self.response_class = functools.partial(  # type: ignore[assignment]
            _TunnelAnswer, on_status=lambda status, reason: answers.append((status, reason))
        )
        try:
            super()._tunnel()
        except OSError as exc:
            if answers and answers[-1][0] != HTTPStatus.OK:
                raise TunnelRefusedError(*answers[-1]) from exc
            raise
        finally:
            del self.response_class


class _WatchedPool(HTTPConnectionPool):
    ConnectionCls = _WatchedConnection


class _WatchedTLSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedTLSConnection


def _failure(exc: u3.HTTPError, shown: str, limit: str) -> UndecatError:
    """:func:`request_failure`, naming which time limit a time-out hit."""
    if isinstance(exc, u3.TimeoutError) and not isinstance(exc, u3.NewConnectionError):
        return PhotoError(f"too slow: {limit} ran out", url=shown)
    return request_failure(exc, shown)


def _limit_next_read(response: urllib3.BaseHTTPResponse, seconds: float) -> None:
    """Let the next socket read wait at most ``seconds`` (the read time-out is per read)."""
    connection = getattr(response, "connection", None)
    sock = getattr(connection, "sock", None)
    if sock is not None:
        sock.settimeout(max(seconds, 0.001))


def _shown(url: str) -> str:
    return redact_url(url)


def _build_pool(settings: FetchSettings) -> urllib3.PoolManager:
    """The one shared pool, through the proxy when set, its connections watched."""
    return _watched(
        pool_manager(
            settings.proxy_url,
            tls_context(settings.ca_bundle),
            num_pools=32,
            maxsize=settings.concurrency,
            retries=False,
        )
    )


def _watched(pool: _P) -> _P:
    """Make ``pool`` build connections that honour the request's :class:`_Watch`."""
    pool.pool_classes_by_scheme = {"http": _WatchedPool, "https": _WatchedTLSPool}
    return pool
