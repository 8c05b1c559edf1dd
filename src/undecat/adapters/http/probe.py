"""Is the proxy answering? One HEAD request through ``PROXY_URL`` (``undecat health``).

The proxy is healthy when a request through it reaches the target and any HTTP answer comes
back (even a 404: the target answered). A refused connection, a timeout, or the proxy's own
``407`` (credentials refused) or ``5xx`` (it could not reach the target) is an outage.
"""

from __future__ import annotations

import urllib3

from undecat.adapters.http.pool import pool_manager, proxy_password
from undecat.errors import ProxyError
from undecat.redact import Secret, redact_text, redact_url

__all__ = ["probe_proxy"]

_PROXY_STATUSES = (407, 502, 503, 504)


def probe_proxy(proxy_url: Secret, target: str, *, timeout: float = 10.0) -> str:
    """Send HEAD ``target`` through the proxy; return a line saying what answered.

    Raises :class:`~undecat.errors.ProxyError` when the proxy is unreachable, refuses the
    credentials or cannot reach the target.
    """
    raw = proxy_url.reveal()
    password = proxy_password(proxy_url)
    secrets = (raw, password) if password else (raw,)
    shown = redact_url(raw)
    manager = pool_manager(
        proxy_url, retries=False, timeout=urllib3.Timeout(connect=timeout, read=timeout)
    )
    try:
        answer = manager.request("HEAD", target, redirect=False, preload_content=True)
    except urllib3.exceptions.HTTPError as exc:
        reason = redact_text(str(exc), secrets)
        raise ProxyError(f"proxy {shown} did not answer for {target}: {reason}") from exc
    finally:
        manager.clear()
    if answer.status == 407:
        raise ProxyError(f"proxy {shown} refused the credentials (407)")
    if answer.status in _PROXY_STATUSES:
        raise ProxyError(f"proxy {shown} could not reach {target} (HTTP {answer.status})")
    return f"proxy {shown} answered: {target} gave HTTP {answer.status}"
