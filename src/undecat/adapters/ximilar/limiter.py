"""A request-rate limiter shared by every Ximilar call of the process."""

from __future__ import annotations

import threading

from undecat.ports import Clock

__all__ = ["RateLimiter"]


class RateLimiter:
    """At most ``rate`` requests per second, evenly spaced, across threads.

    A token bucket of depth one on the injected clock: each request takes the next free
    slot ``1/rate`` seconds after the previous one and sleeps until it (outside the lock, so
    a sleeping thread never blocks the bookkeeping of the others). Depth one means no burst
    can exceed the rate in any one-second window; tests pass a fake clock and never sleep.
    """

    def __init__(self, rate: float, clock: Clock) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self._interval = 1.0 / rate
        self._clock = clock
        self._lock = threading.Lock()
        self._next_free: float | None = None

    def __repr__(self) -> str:
        return f"RateLimiter(rate={self.rate:g}/s)"

    def acquire(self) -> float:
        """Wait for the next free slot; return how long this call waited."""
        with self._lock:
            now = self._clock.monotonic()
            slot = now if self._next_free is None else max(now, self._next_free)
            self._next_free = slot + self._interval
        wait = slot - now
        if wait > 0:
            self._clock.sleep(wait)
        return wait
