"""Every run is logged: open a ``scraper_logs`` row, run, close it with the outcome."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import attrs

from undecat.domain.models import RunResult
from undecat.domain.outcome import run_failed
from undecat.domain.status import RunStatus
from undecat.errors import UndecatError
from undecat.ports import Metrics, RunRecorder

__all__ = ["Job", "logged"]

_log = logging.getLogger("undecat.jobs")


@attrs.frozen
class Job:
    """A named, runnable job of one host, logged in ``scraper_logs`` under ``scraper_name``."""

    scraper_name: str
    work: Callable[[], RunResult] = attrs.field(repr=False)
    recorder: RunRecorder = attrs.field(repr=False)
    observers: Sequence[Metrics] = attrs.field(default=(), repr=False)

    def run(self) -> RunResult:
        """Run the job once and return its (logged) result."""
        return logged(self.recorder, self.scraper_name, self.work, observers=self.observers)


def logged(
    recorder: RunRecorder,
    scraper_name: str,
    work: Callable[[], RunResult],
    *,
    observers: Sequence[Metrics] = (),
) -> RunResult:
    """Run ``work`` inside an open ``scraper_logs`` row and close the row with its result.

    An :class:`~undecat.errors.UndecatError` escaping ``work`` is the run failing: it is
    logged as ``failed`` with its message and returned as the result, never raised. Any other
    exception is logged as ``failed`` too, then re-raised (it is a bug). ``observers`` (the
    metrics) are told of the start and the end, even of a run whose log could not be opened.
    """
    if observers:
        return _observed(observers, scraper_name, lambda: logged(recorder, scraper_name, work))
    run = recorder.start(scraper_name)
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
