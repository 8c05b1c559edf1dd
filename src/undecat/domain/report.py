"""What the status report and the metrics show: plain frozen records, no I/O.

The postgres adapter fills them (``adapters/postgres/report.py``); ``undecat.ops.render``
formats them as text and as one self-contained HTML page; the metrics adapter turns a run's
:class:`~undecat.domain.models.RunResult` into :class:`RunItems`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

import attrs

from undecat.domain.models import RunItems, RunResult

__all__ = [
    "FUNNEL_COLUMNS",
    "BrandFunnel",
    "CollageThumb",
    "DailyRuns",
    "ErrorReason",
    "JobRun",
    "QueueDepth",
    "Report",
    "RunItems",
    "StageWork",
    "run_items",
]

#: The funnel's columns and the states each shows, in order.
FUNNEL_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "image": ("pending", "uploaded", "collage_ready", "error"),
    "ximilar": ("pending", "partial", "synced", "error"),
    "sync": ("pending", "synced", "skipped", "error"),
}


@attrs.frozen
class BrandFunnel:
    """One brand's active products by state of each column, and today's availability."""

    brand: str
    total: int
    counts: Mapping[str, Mapping[str, int]]  # column -> state -> products
    available_today: int  # active products with an availability row fetched today (UTC)

    def count(self, column: str, state: str) -> int:
        """Products of this brand in ``state`` of ``column``."""
        return self.counts.get(column, {}).get(state, 0)

    @property
    def coverage_today(self) -> float:
        """The share of active products with availability fetched today (0..1)."""
        return self.available_today / self.total if self.total else 0.0


@attrs.frozen
class StageWork:
    """Leased work of one stage: held now, leases lapsed (stale), out of attempts."""

    stage: str
    leased: int
    stale: int
    exhausted: int


@attrs.frozen
class QueueDepth:
    """Products of ``brand`` waiting in ``stage`` in ``status`` (pending or error)."""

    stage: str
    status: str
    brand: str
    count: int


@attrs.frozen
class JobRun:
    """The latest run of one job (``scraper_logs``)."""

    scraper_name: str
    status: str
    started_at: datetime
    duration_seconds: int | None
    records_fetched: int
    records_errors: int
    error_message: str | None
    last_success_at: datetime | None


@attrs.frozen
class DailyRuns:
    """How many runs ended in each status on one day (UTC)."""

    day: date
    by_status: Mapping[str, int]


@attrs.frozen
class ErrorReason:
    """An error's first line (ids, URLs and numbers masked) and how often it occurs.

    ``kind`` is ``product`` (active products in an error state carrying it) or ``run``
    (failed runs of the last seven days).
    """

    reason: str
    count: int
    kind: str = "product"


@attrs.frozen
class CollageThumb:
    """A newest collage: its product and a small image (``data:`` URI, or None)."""

    brand: str
    external_id: str
    name: str | None
    url: str
    data_uri: str | None = attrs.field(default=None, repr=False)


@attrs.frozen
class Report:
    """Everything ``undecat status`` shows."""

    generated_at: datetime
    funnels: tuple[BrandFunnel, ...]
    work: tuple[StageWork, ...]
    runs: tuple[JobRun, ...]
    daily_runs: tuple[DailyRuns, ...]
    errors: tuple[ErrorReason, ...]
    collages: tuple[CollageThumb, ...] = ()


#: Run-metadata counters that mean "claimed but neither done nor failed".
_SKIPPED_KEYS = ("products_skipped", "skipped", "released", "lease_lost")


def run_items(result: RunResult) -> RunItems:
    """Split a run's items into done / failed / skipped.

    ``failed`` is ``records_errors``; ``skipped`` adds the metadata counters of items given
    back or passed over (:data:`_SKIPPED_KEYS`); ``done`` is the rest of what the run took
    (``records_fetched``), or, for a run that takes nothing (a requeue), what it wrote.
    A run that kept :class:`~undecat.domain.models.RunCounts` reports them itself.
    """
    if result.items is not None:
        return result.items
    failed = max(0, result.records_errors)
    skipped = sum(_count(result.metadata, key) for key in _SKIPPED_KEYS)
    if result.records_fetched > 0:
        done = max(0, result.records_fetched - failed - skipped)
    else:
        done = max(0, result.records_new + result.records_updated)
    return RunItems(done=done, failed=failed, skipped=skipped)


def _count(metadata: Mapping[str, Any], key: str) -> int:
    value = metadata.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
