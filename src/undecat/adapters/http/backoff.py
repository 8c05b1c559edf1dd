"""Backing off when a CDN says it is busy (429 Too Many Requests, 503 Service Unavailable).

The n-th busy answer in a row waits the n-th entry of ``BACKOFF_SCHEDULE`` (5 s, 15 s, 45 s);
one more busy answer after the schedule is used up is an error. A ``Retry-After`` header
(seconds, or an HTTP date) is honoured by waiting at least as long as it asks.
"""

from __future__ import annotations

import email.utils
from collections.abc import Sequence
from datetime import UTC, datetime

__all__ = ["BUSY_STATUSES", "backoff_wait", "retry_after_seconds"]

#: The statuses that mean "come back later" rather than "this photo is bad".
BUSY_STATUSES = frozenset({429, 503})


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """Return the wait a ``Retry-After`` value asks for, or None when absent or unreadable.

    ``value`` is either a number of seconds or an HTTP date; a date in the past means no
    wait (0). ``now`` must be timezone-aware.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP date is GMT by definition
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def backoff_wait(
    busy_answers: int, schedule: Sequence[float], retry_after: float | None
) -> float | None:
    """Return how long to wait after the ``busy_answers``-th busy answer, or None to give up.

    ``busy_answers`` counts from 1. The wait is the schedule's entry, raised to the
    server's ``Retry-After`` when that asks for longer.
    """
    if busy_answers < 1 or busy_answers > len(schedule):
        return None
    wait = schedule[busy_answers - 1]
    if retry_after is not None:
        wait = max(wait, retry_after)
    return wait
