"""Every run is logged: open a ``scraper_logs`` row, run, close it with the outcome.

A run asked to stop (SIGTERM / SIGINT, through a :class:`StopToken` the composition root
hands in) finishes or abandons the item in hand, releases what it claimed and did not start,
and is closed ``interrupted`` with its counts.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from undecat.domain.models import RunResult
from undecat.domain.outcome import run_failed
from undecat.domain.status import RunStatus
from undecat.errors import UndecatError
from undecat.ports import Metrics, RunRecorder

__all__ = ["Job", "StopToken", "logged"]

_log = logging.getLogger("undecat.jobs")


class StopToken:
    """A request to stop, set from outside the job (a signal handler) and read by the job.

    Jobs check :attr:`requested` between items: once set, no new item is started, the item
    in hand is finished or abandoned, and unstarted claims are released. Thread-safe.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._reason: str | None = None

    def __repr__(self) -> str:
        return f"StopToken(requested={self.requested}, reason={self._reason!r})"

    def request(self, reason: str) -> None:
        """Ask the running job to stop, saying why (e.g. ``"SIGTERM"``); the first reason wins."""
        if not self._event.is_set():
            self._reason = reason
            self._event.set()

    @property
    def requested(self) -> bool:
        """Whether a stop was asked for."""
        return self._event.is_set()

    @property
    def reason(self) -> str | None:
        """Why the stop was asked for (None while it was not)."""
        return self._reason

    def wait(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds, waking early on a stop; return whether one came."""
        return self._event.wait(timeout)


@attrs.frozen
class Job:
    """A named, runnable job of one host, logged in ``scraper_logs`` under ``scraper_name``."""

    scraper_name: str
    work: Callable[[], RunResult] = attrs.field(repr=False)
    recorder: RunRecorder = attrs.field(repr=False)
    observers: Sequence[Metrics] = attrs.field(default=(), repr=False)
    stop: StopToken | None = attrs.field(default=None, repr=False)
    metadata: dict[str, Any] | None = attrs.field(default=None, repr=False)

    def run(self) -> RunResult:
        """Run the job once and return its (logged) result."""
        return logged(
            self.recorder,
            self.scraper_name,
            self.work,
            observers=self.observers,
            stop=self.stop,
            metadata=self.metadata,
        )


def logged(
    recorder: RunRecorder,
    scraper_name: str,
    work: Callable[[], RunResult],
    *,
    observers: Sequence[Metrics] = (),
    stop: StopToken | None = None,
    metadata: dict[str, Any] | None = None,
) -> RunResult:
    """Run ``work`` inside an open ``scraper_logs`` row and close the row with its result.

    An :class:`~undecat.errors.UndecatError` escaping ``work`` is the run failing: it is
    logged as ``failed`` with its message and returned as the result, never raised. Any other
    exception is logged as ``failed`` too, then re-raised (it is a bug). ``observers`` (the
    metrics) are told of the start and the end, even of a run whose log could not be opened.
    A run that returns after ``stop`` was requested is logged ``interrupted`` with the counts
    it reached. ``metadata`` (the host, the process) is stored on the row when it is opened.
    """
    if observers:
        return _observed(
            observers,
            scraper_name,
            lambda: logged(recorder, scraper_name, work, stop=stop, metadata=metadata),
        )
    run = recorder.start(scraper_name, metadata)
    _log.info("%s: started (run log %s)", scraper_name, run.id)
    try:
        result = work()
    except UndecatError as exc:
        result = RunResult(status=RunStatus.FAILED, error_message=f"{type(exc).__name__}: {exc}")
        recorder.finish(run, result)
        _log.error("%s: failed: %s", scraper_name, result.error_message)  # message is enough
        return result
    except BaseException as exc:
        recorder.finish(
            run,
            RunResult(
                status=RunStatus.FAILED,
                error_message=f"internal error: {type(exc).__name__}: {exc}",
            ),
        )
        raise
    if stop is not None and stop.requested and result.status != RunStatus.FAILED:
        result = attrs.evolve(
            result,
            status=RunStatus.INTERRUPTED,
            error_message=f"interrupted by {stop.reason}; claimed work not started was released",
            metadata={**result.metadata, "interrupted_by": stop.reason, "ended_as": result.status},
        )
    recorder.finish(run, result)
    # A failed run's summary is an ERROR (with its reason); a dry run says so.
    failed = run_failed(result)
    _log.log(
        logging.ERROR if failed else logging.INFO,
        "%s: %s%s (fetched %d, new %d, updated %d, errors %d)%s",
        scraper_name,
        result.status,
        " (dry run: nothing sent)" if result.metadata.get("dry_run") else "",
        result.records_fetched,
        result.records_new,
        result.records_updated,
        result.records_errors,
        f": {result.error_message}" if failed and result.error_message else "",
    )
    return result


def _observed(
    observers: Sequence[Metrics], scraper_name: str, run: Callable[[], RunResult]
) -> RunResult:
    """Tell ``observers`` that the run starts and how it ended; their failures are logged."""

    def tell(event: Callable[[Metrics], None]) -> None:
        for observer in observers:
            try:
                event(observer)
            except UndecatError as exc:
                _log.warning("%s: metrics not written: %s", scraper_name, exc)

    tell(lambda observer: observer.run_started(scraper_name))
    try:
        result = run()
    except UndecatError as exc:  # the run log itself could not be opened (database down)
        failed = RunResult(status=RunStatus.FAILED, error_message=f"{type(exc).__name__}: {exc}")
        tell(lambda observer: observer.run_finished(scraper_name, failed))
        raise
    tell(lambda observer: observer.run_finished(scraper_name, result))
    return result
