"""Which photo URLs may be fetched: https on the default port of an allowed host, by default.

The check runs on the catalog's URL and again on every redirect target, so neither a bad
catalog item nor a CDN's redirect can send the downloader to ``file://``, to an internal
address, to another port of an allowed host (``:22``) or to a host outside
``ALLOWED_PHOTO_HOSTS``. Plain ``http://`` is refused -- a proxy exit could swap the image --
unless ``ALLOWED_PHOTO_HTTP_HOSTS`` lists the host. An entry of either list is ``host`` (the
scheme's default port: 443, or 80 for http) or ``host:port`` (that port only).
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from undecat.errors import PhotoError
from undecat.redact import redact_url

__all__ = ["AllowedHosts", "parse_host_entry"]

_DEFAULT_PORT = {"https": 443, "http": 80}


def _normal(host: str) -> str:
    return host.strip().lower().rstrip(".")


def parse_host_entry(entry: str, scheme: str) -> tuple[str, int]:
    """Return ``(host, port)`` of an allow-list entry ``host`` or ``host:port``.

    Raises :class:`ValueError` when the entry is not a host name with an optional port.
    """
    text = entry.strip()
    if not text or any(ch in text for ch in "/@?#") or any(ch.isspace() for ch in text):
        raise ValueError(f"{entry!r} is not a host name or host:port")
    parts = urlsplit(f"//{text}")
    host = _normal(parts.hostname or "")
    port = parts.port  # raises ValueError on a malformed port
    if not host:
        raise ValueError(f"{entry!r} has no host name")
    return host, port if port is not None else _DEFAULT_PORT[scheme]


class AllowedHosts:
    """The hosts photos may come from; :meth:`check` admits or refuses one URL."""

    def __init__(self, hosts: Iterable[str], http_hosts: Iterable[str] = ()) -> None:
        self._allowed = frozenset(
            ("https", *parse_host_entry(h, "https")) for h in hosts if h.strip()
        ) | frozenset(("http", *parse_host_entry(h, "http")) for h in http_hosts if h.strip())
        self.hosts = frozenset(host for _, host, _ in self._allowed)
        if not self.hosts:
            raise ValueError("at least one allowed photo host is needed")

    def __repr__(self) -> str:
        shown = sorted(f"{scheme}://{host}:{port}" for scheme, host, port in self._allowed)
        return f"AllowedHosts({shown!r})"

    def check(self, url: str) -> str:
        """Return ``url`` if it may be fetched; raise :class:`PhotoError` saying why not."""
        shown = redact_url(url)
        if any(ch.isspace() or ord(ch) < 0x20 for ch in url):
            raise PhotoError("the photo URL contains spaces or control characters", url=shown)
        try:
            parts = urlsplit(url)
            port = parts.port  # raises ValueError on a malformed port
        except ValueError:
            raise PhotoError("the photo URL is malformed", url=shown) from None
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORT:
            named = parts.scheme or "no scheme"
            raise PhotoError(f"only http and https photo URLs are fetched, not {named}", url=shown)
        if "@" in parts.netloc:
            raise PhotoError("photo URLs with user credentials are not fetched", url=shown)
        host = _normal(parts.hostname or "")
        if not host:
            raise PhotoError("the photo URL has no host", url=shown)
        if host not in self.hosts:
            raise PhotoError(f"host {host} is not in ALLOWED_PHOTO_HOSTS", url=shown)
        port = port if port is not None else _DEFAULT_PORT[scheme]
        if (scheme, host, port) not in self._allowed:
            if scheme == "http" and not any(s == "http" and h == host for s, h, _ in self._allowed):
                raise PhotoError(
                    f"plain http from {host} is refused (photos come over https;"
                    " ALLOWED_PHOTO_HTTP_HOSTS lists the exceptions)",
                    url=shown,
                )
            raise PhotoError(
                f"port {port} of {host} is not allowed for {scheme} (only the default port,"
                " or a host:port entry of ALLOWED_PHOTO_HOSTS / ALLOWED_PHOTO_HTTP_HOSTS)",
                url=shown,
            )
        return url
