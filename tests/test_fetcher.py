"""The photo fetcher against a real proxy (proxy.py, basic auth) and a local HTTP/HTTPS origin."""

from __future__ import annotations

import gzip
import random
import threading
import time
from collections.abc import Callable, Iterator
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import FakeClock
from tests.fix_origin import Origin, Reply
from tests.fix_proxy import ProxyServer
from undecat.adapters.clock import SystemClock
from undecat.adapters.http import FetchSettings, ProxyPhotoFetcher
from undecat.adapters.http.useragents import USER_AGENTS
from undecat.errors import PhotoError, ProxyError
from undecat.ports import Clock
from undecat.redact import Secret

JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40 + b"\xff\xd9"
FAR = 1e12  # a product deadline that never runs out

MakeFetcher = Callable[..., ProxyPhotoFetcher]


@pytest.fixture
def make_fetcher(
    proxy_server: ProxyServer, origin_ca: Path, origin_server: Origin
) -> Iterator[MakeFetcher]:
    """Build fetchers through the session proxy (closed after the test)."""
    made: list[ProxyPhotoFetcher] = []

    def make(
        *, clock: Clock | None = None, proxy: str | None = None, **changes: Any
    ) -> ProxyPhotoFetcher:
        settings: dict[str, Any] = {
            "proxy_url": Secret(proxy or proxy_server.url),
            "allowed_hosts": origin_server.allowed_hosts,
            "http_hosts": origin_server.http_hosts,
            "ca_bundle": origin_ca,
            "timeout": 5.0,
            "backoff": (5.0, 15.0, 45.0),
            "concurrency": 4,
            "delay_min": 0.0,
            "delay_max": 0.0,
        }
        settings.update(changes)
        fetcher = ProxyPhotoFetcher(
            FetchSettings(**settings), clock=clock or FakeClock(), rng=random.Random(7)
        )
        made.append(fetcher)
        return fetcher

    yield make
    for fetcher in made:
        fetcher.close()


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_photo_comes_through_the_proxy(
    make_fetcher: MakeFetcher, origin: Origin, tls: bool
) -> None:
    """A photo is fetched through the authenticating proxy, over HTTP and over CONNECT + TLS."""
    origin.serve("/p/1.jpg", Reply(body=JPEG, headers={"Content-Type": "image/jpeg"}))
    photo = make_fetcher().fetch(origin.url("/p/1.jpg", tls=tls), deadline=FAR)
    assert photo.content == JPEG
    assert photo.content_type == "image/jpeg"
    assert origin.hits["/p/1.jpg"] == 1


def test_tls_is_verified(make_fetcher: MakeFetcher, origin: Origin) -> None:
    """Without the CA that signed the origin's certificate, the photo is refused."""
    origin.serve("/p/1.jpg", Reply(body=JPEG))
    with pytest.raises(PhotoError, match="certificate did not verify"):
        make_fetcher(ca_bundle=None).fetch(origin.url("/p/1.jpg", tls=True), deadline=FAR)
    assert origin.hits["/p/1.jpg"] == 0


def test_user_agents_rotate_over_eight_browsers(make_fetcher: MakeFetcher, origin: Origin) -> None:
    """Consecutive requests carry the eight browser user agents in turn."""
    origin.serve("/p/1.jpg", Reply(body=JPEG))
    fetcher = make_fetcher()
    for _ in range(16):
        fetcher.fetch(origin.url("/p/1.jpg"), deadline=FAR)
    assert len(set(USER_AGENTS)) == 8
    assert set(origin.user_agents) == set(USER_AGENTS)
    assert origin.user_agents[:8] == origin.user_agents[8:]


@pytest.mark.parametrize(
    ("status", "text"), [(404, "not found"), (410, "gone"), (403, "forbidden")]
)
@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_client_errors_fail_the_photo(
    make_fetcher: MakeFetcher, origin: Origin, status: int, text: str, tls: bool
) -> None:
    """404, 410 and other 4xx answers are the photo's fault, with a readable reason."""
    origin.serve("/p/x.jpg", Reply(status=status, body=b"nope"))
    with pytest.raises(PhotoError, match=f"HTTP {status} {text}"):
        make_fetcher().fetch(origin.url("/p/x.jpg", tls=tls), deadline=FAR)
    assert origin.hits["/p/x.jpg"] == 1


def test_429_then_200_backs_off_once(make_fetcher: MakeFetcher, origin: Origin) -> None:
    """A 429 is waited out along the schedule (5 s) and the retry's photo is returned."""
    clock = FakeClock()
    origin.serve("/p/1.jpg", Reply(status=429), Reply(body=JPEG))
    photo = make_fetcher(clock=clock).fetch(origin.url("/p/1.jpg"), deadline=FAR)
    assert photo.content == JPEG
    assert clock.sleeps == [5.0]
    assert origin.hits["/p/1.jpg"] == 2


def test_503_four_times_is_an_error_after_the_whole_schedule(
    make_fetcher: MakeFetcher, origin: Origin
) -> None:
    """Four 503 answers in a row wait 5, 15 and 45 s, then fail the photo."""
    clock = FakeClock()
    origin.serve("/p/1.jpg", Reply(status=503))
    with pytest.raises(PhotoError, match="503 still after backing off 5, 15, 45 s"):
        make_fetcher(clock=clock).fetch(origin.url("/p/1.jpg", tls=True), deadline=FAR)
    assert clock.sleeps == [5.0, 15.0, 45.0]
    assert origin.hits["/p/1.jpg"] == 4


@pytest.mark.slow
def test_backoff_really_waits_with_a_short_schedule(
    make_fetcher: MakeFetcher, origin: Origin
) -> None:
    """On the real clock, a shortened schedule is actually slept before the error."""
    origin.serve("/p/1.jpg", Reply(status=503))
    fetcher = make_fetcher(clock=SystemClock(), backoff=(0.05, 0.1, 0.2))
    started = time.monotonic()
    with pytest.raises(PhotoError, match="still after backing off"):
        fetcher.fetch(origin.url("/p/1.jpg"), deadline=time.monotonic() + 10)
    assert 0.35 <= time.monotonic() - started < 2.0
    assert origin.hits["/p/1.jpg"] == 4


def test_retry_after_seconds_is_honoured(make_fetcher: MakeFetcher, origin: Origin) -> None:
    """A Retry-After longer than the schedule's step is waited in full."""
    clock = FakeClock()
    origin.serve("/p/1.jpg", Reply(status=429, headers={"Retry-After": "12"}), Reply(body=JPEG))
    make_fetcher(clock=clock).fetch(origin.url("/p/1.jpg"), deadline=FAR)
    assert clock.sleeps == [12.0]


def test_retry_after_http_date_is_honoured(make_fetcher: MakeFetcher, origin: Origin) -> None:
    """A Retry-After given as an HTTP date waits until that date."""
    clock = FakeClock()
    when = format_datetime(clock.now().replace(microsecond=0) + _seconds(30), usegmt=True)
    origin.serve("/p/1.jpg", Reply(status=503, headers={"Retry-After": when}), Reply(body=JPEG))
    make_fetcher(clock=clock).fetch(origin.url("/p/1.jpg"), deadline=FAR)
    assert clock.sleeps == [pytest.approx(30.0, abs=1.0)]


def test_retry_after_past_the_product_budget_fails_at_once(
    make_fetcher: MakeFetcher, origin: Origin
) -> None:
    """A Retry-After beyond the product's deadline fails the photo without waiting."""
    clock = FakeClock()
    origin.serve("/p/1.jpg", Reply(status=429, headers={"Retry-After": "3600"}))
    with pytest.raises(PhotoError, match="past the product's time limit"):
        make_fetcher(clock=clock).fetch(origin.url("/p/1.jpg"), deadline=clock.monotonic() + 120)
    assert clock.sleeps == []


def test_photo_slower_than_its_timeout_fails(make_fetcher: MakeFetcher, origin: Origin) -> None:
    """An origin that takes longer than DOWNLOAD_TIMEOUT to answer fails the photo on time."""
    origin.serve("/p/slow.jpg", Reply(body=JPEG, delay=1.5))
    fetcher = make_fetcher(clock=SystemClock(), timeout=0.3)
    started = time.monotonic()
    with pytest.raises(PhotoError, match="too slow"):
        fetcher.fetch(origin.url("/p/slow.jpg", tls=True), deadline=time.monotonic() + 60)
    assert time.monotonic() - started < 1.2


def test_trickling_body_is_cut_at_the_photo_timeout(
    make_fetcher: MakeFetcher, origin: Origin
) -> None:
    """A body that keeps trickling in is abandoned once the photo's whole time limit is spent."""
    origin.serve("/p/drip.jpg", Reply(body=JPEG * 4, chunk=2000, trickle=0.1))
    fetcher = make_fetcher(clock=SystemClock(), timeout=0.35)
    started = time.monotonic()
    with pytest.raises(PhotoError, match="too slow"):
        fetcher.fetch(origin.url("/p/drip.jpg"), deadline=time.monotonic() + 60)
    assert time.monotonic() - started < 0.9


def test_product_deadline_bounds_the_photo(make_fetcher: MakeFetcher, origin: Origin) -> None:
    """The product's deadline cuts a request short even when the photo's own limit is longer."""
    origin.serve("/p/slow.jpg", Reply(body=JPEG, delay=1.5))
    fetcher = make_fetcher(clock=SystemClock(), timeout=30)
    started = time.monotonic()
    with pytest.raises(PhotoError, match="too slow"):
        fetcher.fetch(origin.url("/p/slow.jpg"), deadline=time.monotonic() + 0.3)
    assert time.monotonic() - started < 1.2


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_connection_cut_mid_body_fails_the_photo(
    make_fetcher: MakeFetcher, origin: Origin, tls: bool
) -> None:
    """An origin that hangs up half-way through the body fails the photo (IncompleteRead)."""
    origin.serve("/p/cut.jpg", Reply(body=JPEG * 10, cut_after=3000))
    with pytest.raises(PhotoError, match="cut mid-transfer"):
        make_fetcher().fetch(origin.url("/p/cut.jpg", tls=tls), deadline=FAR)


def test_declared_size_over_the_cap_is_refused_unread(
    make_fetcher: MakeFetcher, origin: Origin
) -> None:
    """A Content-Length above MAX_PHOTO_BYTES fails the photo before the body is read."""
    origin.serve("/p/big.jpg", Reply(body=JPEG * 20))
    with pytest.raises(PhotoError, match="too large"):
        make_fetcher(max_bytes=len(JPEG)).fetch(origin.url("/p/big.jpg"), deadline=FAR)


def test_undeclared_size_stops_reading_past_the_cap(
    make_fetcher: MakeFetcher, origin: Origin
) -> None:
    """A body without Content-Length is read only until it passes the cap."""
    origin.serve("/p/big.jpg", Reply(body=JPEG * 200, length=False, chunk=4096, trickle=0.001))
    with pytest.raises(PhotoError, match=f"more than {len(JPEG) * 2} bytes"):
        make_fetcher(max_bytes=len(JPEG) * 2).fetch(origin.url("/p/big.jpg"), deadline=FAR)


def test_redirect_to_an_allowed_host_is_followed(make_fetcher: MakeFetcher, origin: Origin) -> None:
    """A redirect within the allowed hosts (here from HTTP to HTTPS) is followed."""
    target = origin.url("/p/real.jpg", tls=True)
    origin.serve("/p/moved.jpg", Reply(status=301, headers={"Location": target}))
    origin.serve("/p/real.jpg", Reply(body=JPEG))
    photo = make_fetcher().fetch(origin.url("/p/moved.jpg"), deadline=FAR)
    assert photo.content == JPEG
    assert photo.url == origin.url("/p/moved.jpg")


def test_redirect_to_a_host_not_allowed_is_refused(
    make_fetcher: MakeFetcher, origin: Origin
) -> None:
    """A redirect to a host outside ALLOWED_PHOTO_HOSTS is refused and never requested."""
    elsewhere = origin.url("/p/evil.jpg", host="127.0.0.1")
    origin.serve("/p/moved.jpg", Reply(status=302, headers={"Location": elsewhere}))
    origin.serve("/p/evil.jpg", Reply(body=JPEG))
    with pytest.raises(PhotoError, match=r"redirected to a refused URL: host 127\.0\.0\.1 is not"):
        make_fetcher().fetch(origin.url("/p/moved.jpg"), deadline=FAR)
    assert origin.hits["/p/evil.jpg"] == 0


def test_redirect_to_file_url_is_refused(make_fetcher: MakeFetcher, origin: Origin) -> None:
    """A redirect to file:// is refused."""
    origin.serve("/p/moved.jpg", Reply(status=302, headers={"Location": "file:///etc/passwd"}))
    with pytest.raises(PhotoError, match="only http and https"):
        make_fetcher().fetch(origin.url("/p/moved.jpg"), deadline=FAR)


def test_redirect_loop_is_cut(make_fetcher: MakeFetcher, origin: Origin) -> None:
    """Endless redirects stop after five."""
    origin.serve("/p/loop.jpg", Reply(status=302, headers={"Location": "/p/loop.jpg"}))
    with pytest.raises(PhotoError, match="more than 5 redirects"):
        make_fetcher().fetch(origin.url("/p/loop.jpg"), deadline=FAR)
    assert origin.hits["/p/loop.jpg"] == 6


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///etc/passwd", "only http and https"),
        ("ftp://localhost/p.jpg", "only http and https"),
        ("http://127.0.0.1/p.jpg", "not in ALLOWED_PHOTO_HOSTS"),
        ("https://static.zara.net.evil.example/p.jpg", "not in ALLOWED_PHOTO_HOSTS"),
        ("http://user:pw@localhost/p.jpg", "credentials"),
        ("http:///p.jpg", "no host"),
        ("http://localhost/p .jpg", "spaces"),
        ("http://localhost:99999/p.jpg", "malformed"),
    ],
)
def test_urls_outside_the_rules_are_never_requested(
    make_fetcher: MakeFetcher, url: str, reason: str
) -> None:
    """Only http/https URLs on an allowed host, without credentials, are fetched at all."""
    with pytest.raises(PhotoError, match=reason):
        make_fetcher().fetch(url, deadline=FAR)


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_proxy_refusing_credentials_is_an_outage(
    make_fetcher: MakeFetcher, origin: Origin, proxy_server: ProxyServer, tls: bool
) -> None:
    """A 407 from the proxy is a ProxyError (outage) whose message holds no password."""
    origin.serve("/p/1.jpg", Reply(body=JPEG))
    fetcher = make_fetcher(proxy=proxy_server.url_with("wrong-password"))
    with pytest.raises(ProxyError, match="407") as caught:
        fetcher.fetch(origin.url("/p/1.jpg", tls=tls), deadline=FAR)
    assert "wrong-password" not in str(caught.value)
    assert "wrong-password" not in repr(fetcher)
    assert origin.hits["/p/1.jpg"] == 0


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_proxy_down_is_an_outage(
    make_fetcher: MakeFetcher, origin: Origin, proxy_down: str, tls: bool
) -> None:
    """A proxy nobody answers on is a ProxyError, not the photo's fault."""
    with pytest.raises(ProxyError, match="unreachable") as caught:
        make_fetcher(proxy=proxy_down).fetch(origin.url("/p/1.jpg", tls=tls), deadline=FAR)
    assert "proxy-pass" not in str(caught.value)


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_origin_down_behind_a_working_proxy_fails_the_photo(
    make_fetcher: MakeFetcher, tls: bool
) -> None:
    """When the proxy answers but cannot reach the origin (502), the photo fails, no outage."""
    from undecat.adapters.postgres.embedded import free_port  # noqa: PLC0415

    port = free_port()
    url = f"{'https' if tls else 'http'}://localhost:{port}/p/1.jpg"
    fetcher = make_fetcher(allowed_hosts=(f"localhost:{port}",), http_hosts=(f"localhost:{port}",))
    with pytest.raises(PhotoError, match="502 bad gateway"):
        fetcher.fetch(url, deadline=FAR)


def test_requests_in_flight_never_exceed_the_limit(
    make_fetcher: MakeFetcher, origin: Origin
) -> None:
    """Twelve threads sharing one fetcher with a limit of 3 never have more than 3 at the origin."""
    origin.serve("/p/1.jpg", Reply(body=JPEG, delay=0.25))
    fetcher = make_fetcher(clock=SystemClock(), concurrency=3)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(3):
                fetcher.fetch(origin.url("/p/1.jpg"), deadline=time.monotonic() + 30)
        except BaseException as exc:  # noqa: BLE001  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert origin.hits["/p/1.jpg"] == 36
    # Never past the limit, and concurrent at all. All three at once is usual but not
    # certain: the third slot's request may still be crossing the proxy's tunnel when
    # another ends (seen twice in CI runs, with 0.05 s and with 0.25 s answers).
    assert 2 <= origin.max_in_flight <= 3


def test_random_pause_before_each_request(make_fetcher: MakeFetcher, origin: Origin) -> None:
    """Each request, retries included, is preceded by a pause drawn from [min, max]."""
    clock = FakeClock()
    origin.serve("/p/1.jpg", Reply(status=429), Reply(body=JPEG))
    fetcher = make_fetcher(clock=clock, delay_min=0.5, delay_max=2.0)
    fetcher.fetch(origin.url("/p/1.jpg"), deadline=FAR)
    fetcher.fetch(origin.url("/p/1.jpg"), deadline=FAR)
    pauses = [clock.sleeps[0], clock.sleeps[2], clock.sleeps[3]]
    assert clock.sleeps[1] == 5.0
    assert all(0.5 <= p <= 2.0 for p in pauses)
    assert len(set(pauses)) == 3


def _seconds(n: float) -> Any:
    from datetime import timedelta  # noqa: PLC0415

    return timedelta(seconds=n)


# --- issue 16 items 1 and 5: one absolute deadline; no decoding -----------------------------

_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\n"


def _bytewise(data: bytes) -> tuple[bytes, ...]:
    return tuple(data[i : i + 1] for i in range(len(data)))


def _chunked_slowly(body: bytes) -> tuple[bytes, ...]:
    """Headers at once, then each chunk's size line one byte at a time."""
    pieces: list[bytes] = [_HEAD + b"Transfer-Encoding: chunked\r\n\r\n"]
    for byte in body:
        pieces.extend(_bytewise(b"0000001\r\n"))  # a long-winded chunk-size line
        pieces.append(bytes([byte]) + b"\r\n")
    pieces.append(b"0\r\n\r\n")
    return tuple(pieces)


TRICKLES = {
    # ~60 bytes of status line and headers, one every 0.1 s: 6 s in all.
    "slow headers": (*_bytewise(_HEAD + b"Content-Length: 4\r\n\r\n"), b"\xff\xd8\xff\xd9"),
    # Every chunk-size line sent a byte at a time: each read returns something, never idles.
    "slow chunk lines": _chunked_slowly(JPEG[:16]),
    # A declared body, one byte every 0.1 s.
    "slow body": (_HEAD + b"Content-Length: 80\r\n\r\n", *_bytewise(JPEG[:80])),
}


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
@pytest.mark.parametrize("pieces", TRICKLES.values(), ids=TRICKLES.keys())
def test_a_trickling_origin_cannot_hold_a_fetch_past_its_deadline(
    make_fetcher: MakeFetcher, origin: Origin, pieces: tuple[bytes, ...], tls: bool
) -> None:
    """Headers, chunk lines or body sent a byte every 0.1 s fail the photo at DOWNLOAD_TIMEOUT."""
    origin.serve("/p/trickle.jpg", Reply(raw=pieces, trickle=0.1))
    fetcher = make_fetcher(clock=SystemClock(), timeout=1.0)
    started = time.monotonic()
    with pytest.raises(PhotoError, match="too slow"):
        fetcher.fetch(origin.url("/p/trickle.jpg", tls=tls), deadline=time.monotonic() + 60)
    elapsed = time.monotonic() - started
    assert elapsed < 2.5, f"the fetch took {elapsed:.1f} s against a 1 s limit"


def test_a_trickle_within_the_deadline_still_arrives(
    make_fetcher: MakeFetcher, origin: Origin
) -> None:
    """A slow but timely answer (chunked, a few pieces) is fetched whole."""
    origin.serve("/p/ok.jpg", Reply(raw=_chunked_slowly(JPEG[:3]), trickle=0.01))
    fetcher = make_fetcher(clock=SystemClock(), timeout=5.0)
    photo = fetcher.fetch(origin.url("/p/ok.jpg"), deadline=time.monotonic() + 60)
    assert photo.content == JPEG[:3]


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    """About 200 KB of gzip that inflates to 200 MB."""
    return gzip.compress(bytes(200 * 1024 * 1024), compresslevel=9)


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_a_gzip_bomb_is_refused_before_its_body_is_read(
    make_fetcher: MakeFetcher, origin: Origin, gzip_bomb: bytes, tls: bool
) -> None:
    """A Content-Encoding other than identity is refused unread, whatever urllib3 would decode."""
    headers = {"Content-Type": "image/jpeg", "Content-Encoding": "gzip"}
    origin.serve("/p/bomb.jpg", Reply(body=gzip_bomb, headers=headers))
    started = time.process_time()
    with pytest.raises(PhotoError, match="Content-Encoding gzip; only identity"):
        make_fetcher(max_bytes=300 * 1024 * 1024).fetch(
            origin.url("/p/bomb.jpg", tls=tls), deadline=FAR
        )
    assert time.process_time() - started < 1.0


@pytest.mark.parametrize("encoding", ["deflate", "br", "zstd", "identity, gzip", "x-unknown"])
def test_every_other_content_encoding_is_refused(
    make_fetcher: MakeFetcher, origin: Origin, encoding: str
) -> None:
    """Any coding but identity is refused, named in the error."""
    origin.serve("/p/enc.jpg", Reply(body=JPEG, headers={"Content-Encoding": encoding}))
    with pytest.raises(PhotoError, match="only identity is accepted"):
        make_fetcher().fetch(origin.url("/p/enc.jpg"), deadline=FAR)


def test_identity_encoding_is_accepted(make_fetcher: MakeFetcher, origin: Origin) -> None:
    """Content-Encoding: identity (what we ask for) is a plain body."""
    origin.serve("/p/id.jpg", Reply(body=JPEG, headers={"Content-Encoding": "identity"}))
    assert make_fetcher().fetch(origin.url("/p/id.jpg"), deadline=FAR).content == JPEG


def test_plain_http_and_other_ports_are_refused_unless_configured(
    make_fetcher: MakeFetcher, origin: Origin
) -> None:
    """Without the host:port entries the origin's http and non-default https ports are refused."""
    origin.serve("/p/1.jpg", Reply(body=JPEG))
    fetcher = make_fetcher(allowed_hosts=("localhost",), http_hosts=())
    with pytest.raises(PhotoError, match="plain http from localhost is refused"):
        fetcher.fetch(origin.url("/p/1.jpg"), deadline=FAR)
    with pytest.raises(PhotoError, match=f"port {origin.https_port} of localhost"):
        fetcher.fetch(origin.url("/p/1.jpg", tls=True), deadline=FAR)
    assert origin.hits["/p/1.jpg"] == 0
