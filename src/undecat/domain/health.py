"""Health verdicts: one check per dependency or job, and the exit code they add up to.

A check is ``ok``, ``degraded`` (the host works but a job is late) or ``down`` (a dependency
is unreachable or refuses us, or the database is not fit to run the jobs). The worst check
decides the exit code: 0 healthy, 1 degraded, 2 down. Each job's schedule is transcribed
from its systemd timer (``deploy/systemd``; a test keeps the two equal); a job is late when
its last success is older than its period plus :func:`slack`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

import attrs

__all__ = [
    "JOB_PERIODS",
    "CheckResult",
    "Severity",
    "exit_code",
    "job_check",
    "slack",
]


class Severity(enum.IntEnum):
    """How bad a check's finding is; the value is the exit code it calls for."""

    OK = 0
    DEGRADED = 1
    DOWN = 2

    @property
    def label(self) -> str:
        """The word printed for it."""
        return self.name.lower()


@attrs.frozen
class CheckResult:
    """The outcome of one health check: its name, verdict and a line of detail."""

    name: str
    severity: Severity
    detail: str

    def as_json(self) -> dict[str, str]:
        """The check as a JSON object."""
        return {"check": self.name, "status": self.severity.label, "detail": self.detail}


def exit_code(checks: Iterable[CheckResult]) -> int:
    """Return 0 when every check is ok, 1 when the worst is degraded, 2 when one is down."""
    return int(max((check.severity for check in checks), default=Severity.OK))


_MINUTE, _HOUR, _DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)

#: How often each job runs, by (host, job): the period of its timer's ``OnCalendar``.
JOB_PERIODS: Mapping[tuple[str, str], timedelta] = {
    ("apify", "apify_zara"): 7 * _DAY,
    ("apify", "apify_bershka"): 7 * _DAY,
    ("apify", "apify_pullandbear"): 7 * _DAY,
    ("apify", "apify_stradivarius"): 7 * _DAY,
    ("apify", "apify_massimodutti"): 7 * _DAY,
    ("apify", "apify_oysho"): 7 * _DAY,
    ("photo_downloader", "download_pending"): 15 * _MINUTE,
    ("photo_downloader", "retry_failed"): _HOUR,
    ("photo_downloader", "cleanup_temp"): _DAY,
    ("collage", "process_new"): 15 * _MINUTE,
    ("collage", "retry_failed"): _HOUR,
    ("collage", "cleanup_temp"): _DAY,
    ("collage", "retention"): _DAY,
    ("ximilar_sync", "ximilar_sync"): 7 * _DAY,
    ("ximilar_sync", "ximilar_retry"): _DAY,
    ("scraper", "availability_poll"): _HOUR,
    ("scraper", "sync_to_production"): _HOUR,
    ("scraper", "stores_refresh"): _DAY,
    ("scraper", "availability_retention"): _DAY,
}


def slack(period: timedelta) -> timedelta:
    """How late past its period a job may be before it counts as late.

    A quarter of the period, and at least 15 minutes: a run can take a while, and a timer
    missed while the host rebooted fires once at boot (``Persistent=true``).
    """
    return max(period / 4, 15 * _MINUTE)


def job_check(
    name: str,
    period: timedelta | None,
    last_success: datetime | None,
    last_run: tuple[datetime, str] | None,
    now: datetime,
) -> CheckResult:
    """Judge one job from its last success and last run (start time and status).

    Late (degraded) when it never succeeded or its last success is older than the period
    plus :func:`slack`; ok otherwise. A job with no known period is only reported.
    """
    check = f"job {name}"
    latest = "" if last_run is None else f"; last run {_ago(now - last_run[0])} ago: {last_run[1]}"
    if period is None:
        return CheckResult(check, Severity.OK, f"no schedule known{latest}")
    allowed = period + slack(period)
    if last_success is None:
        return CheckResult(check, Severity.DEGRADED, f"never succeeded{latest}")
    age = now - last_success
    if age > allowed:
        return CheckResult(
            check,
            Severity.DEGRADED,
            f"late: last success {_ago(age)} ago (runs every {_ago(period)},"
            f" allowed {_ago(allowed)}){latest}",
        )
    return CheckResult(check, Severity.OK, f"last success {_ago(age)} ago{latest}")


def _ago(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 2 * 86400:
        return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
    return f"{seconds // 86400}d{(seconds % 86400) // 3600}h"
