"""The fetcher's pure rules: backoff and Retry-After, allowed URLs, whose fault a failure is."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from urllib3 import exceptions as u3

from undecat.adapters.http.backoff import backoff_wait, retry_after_seconds
from undecat.adapters.http.classify import (
    TunnelRefusedError,
    request_failure,
    status_failure,
    tunnel_status,
)
from undecat.adapters.http.urls import AllowedHosts
from undecat.errors import PhotoError, PhotoTransportError, ProxyCredentialsError, ProxyError

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SCHEDULE = (5.0, 15.0, 45.0)


@given(st.integers(1, 3), st.none() | st.floats(0, 1000))
def test_backoff_waits_the_schedule_or_longer_when_asked(n: int, asked: float | None) -> None:
    """The n-th busy answer waits the n-th step, or the server's Retry-After if that is longer."""
    wait = backoff_wait(n, SCHEDULE, asked)
    assert wait == max(SCHEDULE[n - 1], asked or 0.0)


@given(st.integers(4, 100) | st.integers(-5, 0), st.none() | st.floats(0, 10))
def test_backoff_gives_up_after_the_schedule(n: int, asked: float | None) -> None:
    """Past the schedule (or before the first answer) there is no wait: the photo fails."""
    assert backoff_wait(n, SCHEDULE, asked) is None


@given(st.integers(0, 10**6))
def test_retry_after_in_seconds(seconds: int) -> None:
    """A Retry-After of digits is that many seconds."""
    assert retry_after_seconds(str(seconds), NOW) == seconds


@given(st.integers(-(10**6), 10**6))
def test_retry_after_as_http_date(offset: int) -> None:
    """A Retry-After date waits until that date, and not at all when it has passed."""
    value = format_datetime(NOW + timedelta(seconds=offset), usegmt=True)
    assert retry_after_seconds(value, NOW) == max(0, offset)


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "1.5e3", "Mon, 99 Foo 2026"])
def test_unreadable_retry_after_is_ignored(value: str | None) -> None:
    """Absent or unreadable Retry-After values ask for nothing (the schedule decides)."""
    assert retry_after_seconds(value, NOW) is None


_HOSTS = AllowedHosts(["static.zara.net", "Static.Oysho.NET."])


@given(
    st.sampled_from(["static.zara.net", "STATIC.ZARA.NET", "static.oysho.net", "static.zara.net."]),
    st.sampled_from(["https", "HTTPS"]),
    st.sampled_from(["", ":443"]),
    st.text("abcdefghij/_-.", max_size=30),
)
def test_allowed_hosts_admit_https_urls_of_their_hosts(
    host: str, scheme: str, port: str, path: str
) -> None:
    """URLs over https on the default port of an allowed host (any case, dot) are admitted."""
    url = f"{scheme}://{host}{port}/{path}"
    assert _HOSTS.check(url) == url


@given(st.integers(1, 65535).filter(lambda p: p != 443))
def test_other_ports_of_an_allowed_host_are_refused(port: int) -> None:
    """An allowed host on any port but 443 (``:22``, ``:8443``) is refused by default."""
    with pytest.raises(PhotoError, match=rf"port {port} of static\.zara\.net is not allowed"):
        _HOSTS.check(f"https://static.zara.net:{port}/p.jpg")


@pytest.mark.parametrize("port", ["", ":80", ":8080"])
def test_plain_http_is_refused_by_default(port: str) -> None:
    """http:// photo URLs are refused unless ALLOWED_PHOTO_HTTP_HOSTS lists the host."""
    with pytest.raises(PhotoError, match=r"plain http from static\.zara\.net is refused"):
        _HOSTS.check(f"http://static.zara.net{port}/p.jpg")


def test_http_and_ports_are_allowed_per_host_by_configuration() -> None:
    """host:port entries admit that port; ALLOWED_PHOTO_HTTP_HOSTS admits http for its hosts."""
    hosts = AllowedHosts(["cdn.example:8443", "static.zara.net"], ["img.example", "[::1]:8080"])
    assert hosts.check("https://cdn.example:8443/a.jpg")
    assert hosts.check("http://img.example/a.jpg")
    assert hosts.check("http://img.example:80/a.jpg")
    assert hosts.check("http://[::1]:8080/a.jpg")
    for refused in (
        "https://cdn.example/a.jpg",  # 443 is not the listed port
        "http://cdn.example:8443/a.jpg",  # that port, but not over http
        "http://img.example:8080/a.jpg",
        "http://static.zara.net/a.jpg",
        "http://[::1]:22/a.jpg",
    ):
        with pytest.raises(PhotoError):
            hosts.check(refused)


@given(st.sampled_from(["file", "ftp", "gopher", "data", "javascript", ""]), st.text(max_size=20))
def test_other_schemes_are_refused(scheme: str, rest: str) -> None:
    """Nothing but http and https is ever fetched."""
    with pytest.raises(PhotoError):
        _HOSTS.check(f"{scheme}://static.zara.net/{rest}")


@given(
    st.sampled_from(
        [
            "static.zara.net.evil.example",
            "evil.example",
            "zara.net",
            "127.0.0.1",
            "[::1]",
            "169.254.169.254",
            "xstatic.zara.net",
        ]
    )
)
def test_other_hosts_are_refused(host: str) -> None:
    """A host not on the list is refused, however close its name."""
    with pytest.raises(PhotoError, match="not in ALLOWED_PHOTO_HOSTS"):
        _HOSTS.check(f"https://{host}/p.jpg")


def test_tunnel_status_is_read_from_urllib3s_proxy_error() -> None:
    """The status a proxy gave a CONNECT is read from the refusal's attributes, not its text."""
    cause = TunnelRefusedError(502, "Bad Gateway")
    error = u3.ProxyError("Unable to connect to proxy", cause)
    assert tunnel_status(error) == (502, "Bad Gateway")
    lookalike = OSError("Tunnel connection failed: 502 Bad Gateway")
    assert tunnel_status(u3.ProxyError("Unable to connect to proxy", lookalike)) is None
    refused = u3.ProxyError("Unable to connect to proxy", ConnectionRefusedError(111, "refused"))
    assert tunnel_status(refused) is None


@pytest.mark.parametrize(
    ("status", "tunnel", "kind"),
    [
        (407, False, ProxyCredentialsError),  # a ProxyError naming PROXY_URL (exit 2)
        (407, True, ProxyCredentialsError),
        (403, True, ProxyError),  # the proxy refuses the tunnel itself
        (403, False, PhotoTransportError),  # the CDN refuses this photo (or all of us)
        (404, False, PhotoError),
        (410, True, PhotoTransportError),  # no tunnel opened: transport level
        (502, True, PhotoTransportError),  # the proxy works, the origin does not
        (502, False, PhotoTransportError),
        (504, False, PhotoTransportError),
        (500, False, PhotoError),
    ],
)
def test_status_faults(status: int, tunnel: bool, kind: type[Exception]) -> None:
    """Credentials and tunnel refusals are outages; the rest is the photo's (some transport)."""
    assert type(status_failure(status, "", "https://x/p.jpg", tunnel=tunnel)) is kind


def test_request_failures_of_the_transfer_are_the_photos() -> None:
    """Time-outs, cut connections and certificates fail the photo; no proxy answer is an outage."""
    pool = None
    assert isinstance(request_failure(u3.ReadTimeoutError(pool, "u", "slow"), "u"), PhotoError)  # type: ignore[arg-type]
    assert isinstance(request_failure(u3.ProtocolError("Connection broken"), "u"), PhotoError)
    assert isinstance(request_failure(u3.SSLError("verify failed"), "u"), PhotoError)
    no_proxy = u3.ProxyError("Unable to connect to proxy", OSError("refused"))
    assert isinstance(request_failure(no_proxy, "u"), ProxyError)
