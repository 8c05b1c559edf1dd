"""Backing off when a CDN says it is busy (429 Too Many Requests, 503 Service Unavailable).

The n-th busy answer in a row waits the n-th entry of ``BACKOFF_SCHEDULE`` (5 s, 15 s, 45 s);
one more busy answer after the schedule is used up is an error. A ``Retry-After`` header
(seconds, or an HTTP date) is honoured by waiting at least as long as it asks.
:func:`retrying` is that schedule as a ``tenacity`` policy whose waits go through the
injected clock, shared by the photo fetcher and the Zara and Ximilar clients.
"""

from __future__ import annotations

import email.utils
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import tenacity

from undecat.ports import Clock

__all__ = ["BUSY_STATUSES", "Busy", "backoff_wait", "retry_after_seconds", "retrying"]

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


class Busy(Exception):  # noqa: N818  # a signal between an attempt and its policy
    """A retryable answer: try again after the schedule's wait, or ``retry_after`` if longer."""

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


def retrying(
    schedule: Sequence[float],
    clock: Clock,
    *,
    on: type[Busy] = Busy,
    max_retry_after: float | None = None,
    before_wait: Callable[[float, Busy], None] | None = None,
) -> tenacity.Retrying:
    """The retry policy of ``schedule``: ``len(schedule) + 1`` attempts, waits by ``clock``.

    The n-th retry waits ``schedule[n - 1]``, or the :class:`Busy` answer's ``retry_after``
    (capped at ``max_retry_after``) when that asks for longer. ``before_wait(seconds, busy)``
    may raise to give up before a wait (a deadline it would pass). After the last attempt the
    last :class:`Busy` is raised, for the caller to name.
    """

    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        asked = exc.retry_after if isinstance(exc, Busy) else None
        if asked is not None and max_retry_after is not None:
            asked = min(asked, max_retry_after)
        seconds = backoff_wait(state.attempt_number, schedule, asked)
        return 0.0 if seconds is None else seconds

    def announce(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        if before_wait is not None and isinstance(exc, Busy):
            before_wait(state.upcoming_sleep, exc)

    return tenacity.Retrying(
        sleep=clock.sleep,
        stop=tenacity.stop_after_attempt(len(schedule) + 1),
        wait=wait,
        retry=tenacity.retry_if_exception_type(on),
        before_sleep=announce,
        reraise=True,
    )
