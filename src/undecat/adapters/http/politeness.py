"""Politeness towards the brands' CDNs: a cap on requests in flight and a pause before each.

One :class:`Politeness` is shared by every thread of the process (the composition root
builds one fetcher), so ``CONCURRENT_DOWNLOADS`` bounds the whole process, not one product.
The random pause is taken *inside* the slot, before the request goes out: each slot then
issues at most one request per ``pause + latency``, which is the bound the throughput
benchmark measures against. The pause goes through the injected clock so tests never sleep.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from undecat.ports import Clock

__all__ = ["Politeness"]


class Politeness:
    """At most ``limit`` requests at once; each preceded by a random pause in [low, high]."""

    def __init__(
        self,
        *,
        limit: int,
        delay_min: float,
        delay_max: float,
        clock: Clock,
        rng: random.Random | None = None,
    ) -> None:
        if limit < 1:
            raise ValueError(f"the in-flight limit must be at least 1, got {limit}")
        if not 0 <= delay_min <= delay_max:
            raise ValueError(f"need 0 <= delay_min <= delay_max, got {delay_min}, {delay_max}")
        self.limit = limit
        self._slots = threading.BoundedSemaphore(limit)
        self._low = delay_min
        self._high = delay_max
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311  # jitter, not cryptography
        self._rng_lock = threading.Lock()

    def pause(self) -> float:
        """Return the next random pause, in seconds."""
        with self._rng_lock:
            return self._rng.uniform(self._low, self._high)

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the in-flight slots for one request, after the pause."""
        with self._slots:
            seconds = self.pause()
            if seconds > 0:
                self._clock.sleep(seconds)
            yield
