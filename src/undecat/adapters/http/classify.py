"""Whose fault a failed photo request is: the one place that decides.

The rule, from what urllib3 shows us through a forwarding proxy:

* **The proxy itself is unreachable or refuses us -> outage** (:class:`~undecat.errors.ProxyError`:
  stop the batch, release the leases, mark nothing). urllib3 raises its ``ProxyError``
  before the proxy has answered anything: connection refused, connect time-out, the proxy
  hanging up before answering a ``CONNECT``. A 407 (to a forwarded request or to a
  ``CONNECT``) is the proxy refusing our credentials, and a 403 to a ``CONNECT`` is the
  proxy refusing to open a tunnel at all: both outages too.
* **The proxy works but the origin does not -> this photo's fault**
  (:class:`~undecat.errors.PhotoError`). ``proxy.py`` (like most proxies) answers a
  ``CONNECT`` to an unreachable origin with 502/504, and a forwarded request with a 502
  response; the fetcher's connection raises the former as :class:`TunnelRefusedError`
  (inside urllib3's ``ProxyError``), whose ``status`` and ``reason`` attributes
  :func:`tunnel_status` reads. Such a tunnel status is handled like any status of
  the origin: 404/410/other 4xx and 5xx fail the photo, 429/503 back off first.
* **The transfer fails -> this photo's fault**: too slow (read time-out), connection cut
  mid-body (``IncompleteRead``), a certificate that does not verify (TLS is never turned
  off; a proxy that re-signs TLS needs ``PROXY_CA_BUNDLE``), a malformed answer.

**Transport-level failures** (:class:`~undecat.errors.PhotoTransportError`, a
``PhotoError``): connection refused or reset, a name that does not resolve, TLS that does not
verify, a tunnel the proxy could not open (a ``CONNECT`` answered 502/504 or any other
non-busy status), a gateway status (502/504) of a forwarded request, and a 403 of the origin.
One of them fails its photo like any photo error; the same on product after product is the
proxy exit being blocked (or the network down), which the download job's circuit breaker
turns into an outage. The error carries the host asked, and whether it was a 403 (a CDN
refusing us is only an outage when several different hosts do it).

A residential proxy that dies mid-body is indistinguishable from an origin that cut the
connection; the download job therefore distrusts product errors that arrive once another
request of the batch has reported an outage, and hands those products back instead.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from urllib3 import exceptions as u3

from undecat.errors import (
    PhotoError,
    PhotoTransportError,
    ProxyCredentialsError,
    ProxyError,
    UndecatError,
)

__all__ = [
    "GATEWAY_STATUSES",
    "TunnelRefusedError",
    "request_failure",
    "status_failure",
    "tunnel_status",
]

#: Statuses a proxy gives when it could not reach the origin.
GATEWAY_STATUSES = frozenset({502, 504})

_REASONS = {
    400: "bad request",
    401: "unauthorized",
    403: "forbidden (blocked by the CDN?)",
    404: "not found",
    410: "gone",
    429: "too many requests",
    500: "server error",
    502: "bad gateway (origin unreachable through the proxy)",
    503: "service unavailable",
    504: "gateway time-out (origin unreachable through the proxy)",
}


class TunnelRefusedError(OSError):
    """The proxy answered our ``CONNECT`` with a status other than 200 (no tunnel opened)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"Tunnel connection failed: {status} {reason}")
        self.status = status
        self.reason = reason


def tunnel_status(exc: u3.ProxyError) -> tuple[int, str] | None:
    """Return the status the proxy gave a ``CONNECT``, or None when it gave none."""
    for candidate in (exc.__cause__, exc.__context__, *exc.args):
        if isinstance(candidate, TunnelRefusedError):
            return candidate.status, candidate.reason
    return None


def status_failure(status: int, reason: str, url: str, *, tunnel: bool) -> UndecatError:
    """Return the error for a final non-success status (after any backoff)."""
    if status == 407:
        return ProxyCredentialsError(
            "the proxy refused our credentials (407 Proxy Authentication Required):"
            " check the user and password in PROXY_URL",
            variable="PROXY_URL",
        )
    if tunnel and status == 403:
        return ProxyError("the proxy refused to open a tunnel (403 Forbidden)")
    text = _REASONS.get(status) or reason.strip().lower() or "unexpected answer"
    if tunnel:
        return _transport(f"the proxy could not open a tunnel: HTTP {status} {text}", url)
    if status in GATEWAY_STATUSES:
        return _transport(f"HTTP {status} {text}", url)
    if status == 403:
        return _transport(f"HTTP {status} {text}", url, forbidden=True)
    return PhotoError(f"HTTP {status} {text}", url=url)


def request_failure(exc: u3.HTTPError, url: str) -> UndecatError:  # noqa: PLR0911  # one per kind
    """Return the error for a request that raised instead of answering."""
    if isinstance(exc, u3.ProxyError):
        # Callers look for a tunnel status first; what is left never reached the proxy.
        return ProxyError(f"the proxy is unreachable: {_first_line(exc)}")
    if isinstance(exc, u3.NameResolutionError):  # before NewConnectionError: a subclass
        return _transport(f"the origin's name does not resolve: {_first_line(exc)}", url)
    if isinstance(exc, u3.NewConnectionError):  # before TimeoutError: it is a subclass
        return _transport(f"the origin is unreachable: {_first_line(exc)}", url)
    if isinstance(exc, u3.TimeoutError):
        return PhotoError("too slow: no answer within the photo's time limit", url=url)
    if isinstance(exc, u3.ProtocolError):
        return _transport(f"the connection was cut mid-transfer: {_first_line(exc)}", url)
    if isinstance(exc, u3.SSLError):
        return _transport(
            "the TLS certificate did not verify (a proxy that re-signs TLS needs PROXY_CA_BUNDLE)",
            url,
        )
    return PhotoError(f"the request failed: {_first_line(exc)}", url=url)


def _transport(message: str, url: str, *, forbidden: bool = False) -> PhotoTransportError:
    try:
        host = urlsplit(url).hostname
    except ValueError:
        host = None
    return PhotoTransportError(message, url=url, host=host, forbidden=forbidden)


def _first_line(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or (exc.args[-1] if exc.args else exc)
    text = str(reason).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
