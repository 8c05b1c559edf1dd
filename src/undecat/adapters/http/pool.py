"""The one way undecat opens outside HTTP connections: TLS verified, through ``PROXY_URL``.

The photo fetcher, the Zara client and the health probe all reach the internet through the
same proxy; this builds their pools one way. The proxy's credentials travel as a
``Proxy-Authorization`` header: the URL handed to urllib3 carries none, so none can surface
in its errors.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import urllib3
from urllib3.util import make_headers

from undecat.errors import ConfigError
from undecat.redact import Secret

__all__ = ["pool_manager", "proxy_password", "tls_context"]


def tls_context(ca_bundle: Path | None) -> ssl.SSLContext:
    """System CAs, plus the extra CAs of ``PROXY_CA_BUNDLE``; verification always on."""
    context = ssl.create_default_context()
    if ca_bundle is not None:
        try:
            context.load_verify_locations(cafile=str(ca_bundle))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"PROXY_CA_BUNDLE {ca_bundle} is not a readable PEM file") from exc
    return context


def proxy_password(proxy_url: Secret) -> str:
    """The proxy's password, percent-decoded ("" when it has none), for scrubbing messages."""
    return unquote(urlsplit(proxy_url.reveal()).password or "")


def pool_manager(
    proxy_url: Secret | None, context: ssl.SSLContext | None = None, **pool: Any
) -> urllib3.PoolManager:
    """A ``PoolManager`` (no proxy) or a ``ProxyManager`` with the credentials as a header.

    ``context`` verifies the origins (and an ``https://`` proxy); ``pool`` is handed to
    urllib3 as it is (``num_pools``, ``maxsize``, ``retries``, ``timeout`` ...).
    """
    if context is not None:
        pool["ssl_context"] = context
    if proxy_url is None:
        return urllib3.PoolManager(**pool)
    parts = urlsplit(proxy_url.reveal())
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    headers: dict[str, str] = {}
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{proxy_password(proxy_url)}"
        headers = make_headers(proxy_basic_auth=credentials)
    return urllib3.ProxyManager(
        f"{parts.scheme}://{host}:{port}",
        proxy_headers=headers,
        proxy_ssl_context=context if parts.scheme == "https" else None,
        **pool,
    )
