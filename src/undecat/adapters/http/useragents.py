"""Real browser user agents, rotated between photo requests.

Brand CDNs block clients that do not look like browsers, and rotating between several
common, current strings keeps any one of them from standing out. The strings follow each
browser's own format (Chrome's "reduced" user agent with a ``.0.0.0`` build, Firefox's
``rv:`` token, Safari's ``Version/``); refresh the version numbers a few times a year.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence

__all__ = ["USER_AGENTS", "UserAgentRotation"]

#: Eight user agents of the browsers most shoppers use (desktop and mobile).
USER_AGENTS: tuple[str, ...] = (
    # Chrome on Windows 10/11
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/143.0.0.0 Safari/537.36",
    # Chrome on macOS
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/143.0.0.0 Safari/537.36",
    # Edge on Windows
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/143.0.0.0 Safari/537.36 Edg/143.0.0.0",
    # Firefox on Windows
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:146.0) Gecko/20100101 Firefox/146.0",
    # Firefox on macOS
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:146.0) Gecko/20100101 Firefox/146.0",
    # Safari on macOS
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/26.1 Safari/605.1.15",
    # Safari on iPhone
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_7 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/26.1 Mobile/15E148 Safari/604.1",
    # Chrome on Android
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/143.0.0.0 Mobile Safari/537.36",
)


class UserAgentRotation:
    """Hands out the user agents in turn, safely across threads."""

    def __init__(self, agents: Sequence[str] = USER_AGENTS) -> None:
        if not agents:
            raise ValueError("at least one user agent is needed")
        self._cycle = itertools.cycle(tuple(agents))
        self._lock = threading.Lock()

    def next(self) -> str:
        """Return the user agent for the next request."""
        with self._lock:
            return next(self._cycle)
