"""Which photo URLs may be fetched: http or https, a host on the allowed list, nothing else.

The check runs on the catalog's URL and again on every redirect target, so neither a bad
catalog item nor a CDN's redirect can send the downloader to ``file://``, to an internal
address or to a host outside ``ALLOWED_PHOTO_HOSTS``.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from undecat.errors import PhotoError
from undecat.redact import redact_url

__all__ = ["AllowedHosts"]

_SCHEMES = frozenset({"http", "https"})


def _normal(host: str) -> str:
    return host.strip().lower().rstrip(".")


class AllowedHosts:
    """The hosts photos may come from; :meth:`check` admits or refuses one URL."""

    def __init__(self, hosts: Iterable[str]) -> None:
        self.hosts = frozenset(_normal(h) for h in hosts if h.strip())
        if not self.hosts:
            raise ValueError("at least one allowed photo host is needed")

    def __repr__(self) -> str:
        return f"AllowedHosts({sorted(self.hosts)!r})"

    def check(self, url: str) -> str:
        """Return ``url`` if it may be fetched; raise :class:`PhotoError` saying why not."""
        shown = redact_url(url)
        if any(ch.isspace() or ord(ch) < 0x20 for ch in url):
            raise PhotoError("the photo URL contains spaces or control characters", url=shown)
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018  # raises ValueError on a malformed port
        except ValueError:
            raise PhotoError("the photo URL is malformed", url=shown) from None
        if parts.scheme.lower() not in _SCHEMES:
            scheme = parts.scheme or "no scheme"
            raise PhotoError(f"only http and https photo URLs are fetched, not {scheme}", url=shown)
        if "@" in parts.netloc:
            raise PhotoError("photo URLs with user credentials are not fetched", url=shown)
        host = _normal(parts.hostname or "")
        if not host:
            raise PhotoError("the photo URL has no host", url=shown)
        if host not in self.hosts:
            raise PhotoError(f"host {host} is not in ALLOWED_PHOTO_HOSTS", url=shown)
        return url
