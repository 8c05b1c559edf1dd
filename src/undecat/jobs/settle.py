"""Settling claims in batches: a stage's results written a few calls at a time.

A stage's workers hand each product's result (a completion or a failure) to a
:class:`Settlements` buffer instead of writing it at once. The buffer is written with
``WorkQueue.complete_many`` and ``fail_many`` -- one statement each, whatever their size --
when it holds ``size`` results or its oldest has waited ``wait`` seconds, and the stage
flushes it before it releases claims, on a stop and at the end of the run. The database
cost of a stage's bookkeeping is then a constant per batch of results, not one round trip
per product.

A result waiting in the buffer is not written: its claim is still the stage's open claim. A
crash loses only the buffer (the leases lapse and the products are done again, which every
stage already allows for: the same keys, the same bytes); an outage while writing leaves the
claims it did not write open, to be released like any claim not settled -- never marked with
a result they did not get.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import attrs

from undecat.domain.models import Claim
from undecat.domain.stages import Outcome
from undecat.errors import OutageError
from undecat.ports import WorkQueue

__all__ = ["SETTLE_BATCH", "SETTLE_WAIT", "Flushed", "Settled", "Settlements"]

#: Results written in one call once that many wait (a round trip per 50 products at most).
SETTLE_BATCH = 50
#: Seconds the oldest waiting result may wait before the buffer is written anyway.
SETTLE_WAIT = 2.0


@attrs.frozen
class Settled:
    """One result the buffer tried to write."""

    claim: Claim
    error: str | None  # None: a completion; else the failure's reason
    held: bool  # False: the lease was lost meanwhile, nothing was written


@attrs.frozen
class Flushed:
    """What one flush wrote, and the outage that stopped it (the rest is left open)."""

    settled: list[Settled]
    outage: OutageError | None = None


class Settlements:
    """Completions and failures waiting to be written together; safe to share by threads."""

    def __init__(
        self,
        queue: WorkQueue,
        monotonic: Callable[[], float],
        *,
        size: int = SETTLE_BATCH,
        wait: float = SETTLE_WAIT,
    ) -> None:
        if size < 1 or wait < 0:
            raise ValueError(f"settlements: size {size} must be >= 1 and wait {wait} >= 0")
        self._queue = queue
        self._monotonic = monotonic
        self._size = size
        self._wait = wait
        self._lock = threading.Lock()
        self._done: list[tuple[Claim, Outcome]] = []
        self._failed: list[tuple[Claim, str]] = []
        self._oldest: float | None = None

    def __repr__(self) -> str:
        return f"Settlements(size={self._size}, wait={self._wait})"

    def complete(self, claim: Claim, outcome: Outcome) -> bool:
        """Hold a completion; return whether the buffer is now due to be written."""
        with self._lock:
            self._done.append((claim, outcome))
            return self._held()

    def fail(self, claim: Claim, message: str) -> bool:
        """Hold a failure; return whether the buffer is now due to be written."""
        with self._lock:
            self._failed.append((claim, message))
            return self._held()

    def _held(self) -> bool:
        if self._oldest is None:
            self._oldest = self._monotonic()
        return self._due()

    def _due(self) -> bool:
        waiting = len(self._done) + len(self._failed)
        if not waiting or self._oldest is None:
            return False
        return waiting >= self._size or self._monotonic() - self._oldest >= self._wait

    def due(self) -> bool:
        """Whether the buffer holds ``size`` results or its oldest has waited ``wait`` s."""
        with self._lock:
            return self._due()

    def __len__(self) -> int:
        with self._lock:
            return len(self._done) + len(self._failed)

    def flush(self) -> Flushed:
        """Write every waiting result (two calls at most); an outage is returned, not raised.

        The results are taken out of the buffer first, so that two threads never write the
        same ones; those an outage kept from being written are in neither list of the
        answer, and their claims stay open.
        """
        with self._lock:
            done, self._done = self._done, []
            failed, self._failed = self._failed, []
            self._oldest = None
        settled: list[Settled] = []
        try:
            if done:
                written = self._queue.complete_many(done)
                settled += [
                    Settled(claim, None, held)
                    for (claim, _), held in zip(done, written, strict=True)
                ]
            if failed:
                written = self._queue.fail_many(failed)
                settled += [
                    Settled(claim, message, held)
                    for (claim, message), held in zip(failed, written, strict=True)
                ]
        except OutageError as exc:
            return Flushed(settled, exc)
        return Flushed(settled)
