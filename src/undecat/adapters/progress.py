"""A progress bar (tqdm: rate and ETA) over a stage's work queue, on a terminal only.

:class:`ProgressQueue` wraps a :class:`~undecat.ports.WorkQueue`: every product the job
finishes (completed or failed) advances the bar, whose total is the stage's
waiting work when the job starts. The jobs do not know about it. Under systemd (no
terminal) the composition root does not wrap the queue at all, and the journal gets the
JSON log lines only.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import IO, Any

from tqdm import tqdm

from undecat.domain.models import Claim
from undecat.domain.stages import Outcome, Stage
from undecat.ports import WorkQueue

__all__ = ["ProgressQueue", "wants_progress"]


def wants_progress(stream: IO[str] | None = None) -> bool:
    """Whether a progress bar should be drawn: only when ``stream`` (stderr) is a terminal."""
    out = sys.stderr if stream is None else stream
    try:
        return out.isatty()
    except (AttributeError, ValueError):
        return False


class ProgressQueue:
    """A :class:`~undecat.ports.WorkQueue` that draws the stage's progress as it goes."""

    def __init__(
        self,
        inner: WorkQueue,
        total: Callable[[], int | None],
        *,
        stream: IO[str] | None = None,
    ) -> None:
        self._inner = inner
        self._total = total
        self._stream = stream
        self._bar: tqdm[Any] | None = None
        self.stage: Stage = inner.stage

    def __repr__(self) -> str:
        return f"ProgressQueue({self._inner!r})"

    def _advance(self, done: bool) -> None:
        if done and self._bar is not None:
            self._bar.update(1)

    def _advance_by(self, count: int) -> None:
        if count and self._bar is not None:
            self._bar.update(count)

    def claim(self, owner: str, limit: int, lease: timedelta) -> list[Claim]:
        """Claim through the wrapped queue; the first claim opens the bar."""
        if self._bar is None:
            self._bar = tqdm(
                total=self._total(),
                desc=self.stage.value,
                unit="product",
                file=self._stream if self._stream is not None else sys.stderr,
                dynamic_ncols=True,
                smoothing=0.1,
            )
        return self._inner.claim(owner, limit, lease)

    def extend(self, claims: Sequence[Claim], lease: timedelta) -> int:
        """Extend through the wrapped queue."""
        return self._inner.extend(claims, lease)

    def complete(self, claim: Claim, outcome: Outcome) -> bool:
        """Complete through the wrapped queue and advance the bar."""
        done = self._inner.complete(claim, outcome)
        self._advance(done)
        return done

    def fail(self, claim: Claim, message: str) -> bool:
        """Fail through the wrapped queue and advance the bar."""
        done = self._inner.fail(claim, message)
        self._advance(done)
        return done

    def complete_many(self, done: Sequence[tuple[Claim, Outcome]]) -> list[bool]:
        """Complete many through the wrapped queue and advance the bar by those written."""
        written = self._inner.complete_many(done)
        self._advance_by(sum(written))
        return written

    def fail_many(self, failed: Sequence[tuple[Claim, str]]) -> list[bool]:
        """Fail many through the wrapped queue and advance the bar by those written."""
        written = self._inner.fail_many(failed)
        self._advance_by(sum(written))
        return written

    def release(self, claims: Sequence[Claim]) -> int:
        """Release through the wrapped queue (the bar does not move)."""
        return self._inner.release(claims)

    def requeue_failed(self) -> int:
        """Requeue through the wrapped queue."""
        return self._inner.requeue_failed()

    def close(self) -> None:
        """Close the bar (idempotent): the composition root does when the jobs are closed.

        Not on the first empty claim: a job claims its next batch while the products of the
        last one are still being finished.
        """
        if self._bar is not None:
            self._bar.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
