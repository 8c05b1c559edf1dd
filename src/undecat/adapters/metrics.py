"""Prometheus text files for node_exporter's textfile collector (``UNDECAT_METRICS_DIR``).

:class:`PrometheusTextfile` is the :class:`~undecat.ports.Metrics` of one host. At the end
of each run it writes ``undecat_<host>_<job>.prom`` (that job's last run) and
``undecat_queue.prom`` (the queue depths, written by whichever run ended last), each with
``prometheus_client``'s registry and ``write_to_textfile``, which writes a temporary file
and renames it over the old one, so the collector never reads half a file. The names and
labels are listed in ``docs/metrics.md``. :class:`MeteredPhotoFetcher` counts the bytes the
photo fetcher received through the proxy.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile
from prometheus_client.parser import text_string_to_metric_families

from undecat.domain.models import RunResult
from undecat.domain.report import QueueDepth, run_items
from undecat.domain.status import RunStatus
from undecat.errors import UndecatError
from undecat.ports import Clock, FetchedPhoto, PhotoFetcher

__all__ = ["METRIC_NAMES", "MeteredPhotoFetcher", "PrometheusTextfile", "job_file"]

_log = logging.getLogger("undecat.metrics")

#: Every metric written, with its help text (docs/metrics.md lists the same).
METRIC_NAMES = {
    "undecat_job_last_run_timestamp_seconds": "When the job's last run ended (Unix time).",
    "undecat_job_last_success_timestamp_seconds": (
        "When a run of the job last ended in success or partial (Unix time)."
    ),
    "undecat_job_last_run_duration_seconds": "How long the job's last run took.",
    "undecat_job_last_run_status": "1 for the status the job's last run ended in, else 0.",
    "undecat_job_last_run_items": "Items of the job's last run by outcome (done/failed/skipped).",
    "undecat_job_last_run_proxy_bytes": "Photo bytes the last run received through the proxy.",
    "undecat_job_last_run_ximilar_records_sent": "Records the last run sent to Ximilar.",
    "undecat_queue_depth": "Products waiting per stage, status (pending/error) and brand.",
}
_JOB_LABELS = ("host", "job")
_SUCCEEDED = (RunStatus.SUCCESS.value, RunStatus.PARTIAL.value)
_STATUSES = tuple(status.value for status in RunStatus if status is not RunStatus.RUNNING)


def job_file(directory: Path, host: str, scraper_name: str) -> Path:
    """The text file holding the last run of ``scraper_name`` on ``host``."""
    safe = "".join(c if c.isalnum() or c == "_" else "_" for c in scraper_name)
    return directory / f"undecat_{host}_{safe}.prom"


class PrometheusTextfile:
    """Writes each run's metrics for node_exporter (the :class:`~undecat.ports.Metrics`)."""

    def __init__(
        self,
        directory: Path,
        host: str,
        clock: Clock,
        *,
        queue_depth: Callable[[], list[QueueDepth]] | None = None,
        proxy_bytes: Callable[[], int] = lambda: 0,
    ) -> None:
        self._dir = directory
        self._host = host
        self._clock = clock
        self._queue_depth = queue_depth
        self._proxy_bytes = proxy_bytes
        self._started: dict[str, tuple[float, int]] = {}

    def __repr__(self) -> str:
        return f"PrometheusTextfile(directory={str(self._dir)!r}, host={self._host!r})"

    def run_started(self, scraper_name: str) -> None:
        """Remember when the run started and the proxy byte count at that moment."""
        self._started[scraper_name] = (self._clock.monotonic(), self._proxy_bytes())

    def run_finished(self, scraper_name: str, result: RunResult) -> None:
        """Write the job's file and the queue depths (UndecatError: folder not writable)."""
        began, bytes_before = self._started.pop(
            scraper_name, (self._clock.monotonic(), self._proxy_bytes())
        )
        ended = self._clock.now().timestamp()
        path = job_file(self._dir, self._host, scraper_name)
        last_success = ended if result.status in _SUCCEEDED else _previous_success(path)
        labels = {"host": self._host, "job": scraper_name}
        registry = CollectorRegistry()

        def gauge(name: str, extra: tuple[str, ...] = ()) -> Gauge:
            return Gauge(name, METRIC_NAMES[name], (*_JOB_LABELS, *extra), registry=registry)

        gauge("undecat_job_last_run_timestamp_seconds").labels(**labels).set(ended)
        if last_success is not None:
            gauge("undecat_job_last_success_timestamp_seconds").labels(**labels).set(last_success)
        gauge("undecat_job_last_run_duration_seconds").labels(**labels).set(
            max(0.0, self._clock.monotonic() - began)
        )
        status = gauge("undecat_job_last_run_status", ("status",))
        for value in _STATUSES:
            status.labels(**labels, status=value).set(1 if result.status == value else 0)
        items = run_items(result)
        item_gauge = gauge("undecat_job_last_run_items", ("outcome",))
        for outcome, count in (
            ("done", items.done),
            ("failed", items.failed),
            ("skipped", items.skipped),
        ):
            item_gauge.labels(**labels, outcome=outcome).set(count)
        gauge("undecat_job_last_run_proxy_bytes").labels(**labels).set(
            max(0, self._proxy_bytes() - bytes_before)
        )
        gauge("undecat_job_last_run_ximilar_records_sent").labels(**labels).set(
            _records_sent(result.metadata)
        )
        self._write(path, registry)
        self._write_queue_depth()

    def _write_queue_depth(self) -> None:
        if self._queue_depth is None:
            return
        try:
            depths = self._queue_depth()
        except UndecatError as exc:  # the database is down: keep the previous file
            _log.warning("queue depth not measured: %s", exc)
            return
        registry = CollectorRegistry()
        gauge = Gauge(
            "undecat_queue_depth",
            METRIC_NAMES["undecat_queue_depth"],
            ("stage", "status", "brand"),
            registry=registry,
        )
        for depth in depths:
            gauge.labels(stage=depth.stage, status=depth.status, brand=depth.brand).set(depth.count)
        self._write(self._dir / "undecat_queue.prom", registry)

    def _write(self, path: Path, registry: CollectorRegistry) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_to_textfile(str(path), registry)
        except OSError as exc:
            raise UndecatError(f"cannot write metrics to {path}: {exc.strerror or exc}") from exc


def _previous_success(path: Path) -> float | None:
    """The last-success timestamp of the job's previous file, if it has one."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    try:
        for family in text_string_to_metric_families(text):
            if family.name == "undecat_job_last_success_timestamp_seconds":
                for sample in family.samples:
                    return float(sample.value)
    except ValueError:
        return None
    return None


def _records_sent(metadata: dict[str, Any]) -> int:
    total = 0
    for key in ("records_inserted",):
        value = metadata.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            total += max(0, value)
    return total


class MeteredPhotoFetcher:
    """A :class:`~undecat.ports.PhotoFetcher` that counts the bytes it received."""

    def __init__(self, inner: PhotoFetcher) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self._bytes = 0

    def __repr__(self) -> str:
        return f"MeteredPhotoFetcher({self._inner!r})"

    @property
    def bytes_received(self) -> int:
        """Photo bytes received so far by this process."""
        with self._lock:
            return self._bytes

    def fetch(self, url: str, *, deadline: float) -> FetchedPhoto:
        """Fetch through the wrapped fetcher and count the body's bytes."""
        photo = self._inner.fetch(url, deadline=deadline)
        with self._lock:
            self._bytes += len(photo.content)
        return photo

    def close(self) -> None:
        """Close the wrapped fetcher."""
        close = getattr(self._inner, "close", None)
        if close is not None:
            close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
