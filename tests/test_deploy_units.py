"""The systemd units run every job of the document at the document's schedule."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

from undecat.bootstrap import HOST_JOBS

UNITS = Path(__file__).resolve().parents[1] / "deploy" / "systemd"

# Transcribed from the source document's job tables (all times UTC).
SCHEDULE = {
    ("scraper", "availability_poll"): "*-*-* *:00:00 UTC",
    ("scraper", "sync_to_production"): "*-*-* *:10:00 UTC",
    # Ours (the document gives no time): daily, outside the :00 poll and :10 sync.
    ("scraper", "stores_refresh"): "*-*-* 02:50:00 UTC",
    ("scraper", "availability_retention"): "*-*-* 03:30:00 UTC",
    ("apify", "apify_zara"): "Sun *-*-* 02:00:00 UTC",
    ("apify", "apify_bershka"): "Sun *-*-* 03:00:00 UTC",
    ("apify", "apify_pullandbear"): "Sun *-*-* 04:00:00 UTC",
    ("apify", "apify_stradivarius"): "Sun *-*-* 05:00:00 UTC",
    ("apify", "apify_massimodutti"): "Sun *-*-* 06:00:00 UTC",
    ("apify", "apify_oysho"): "Sun *-*-* 07:00:00 UTC",
    ("photo_downloader", "download_pending"): "*-*-* *:00/15:00 UTC",
    ("photo_downloader", "retry_failed"): "*-*-* *:30:00 UTC",
    ("photo_downloader", "cleanup_temp"): "*-*-* 05:00:00 UTC",
    ("collage", "process_new"): "*-*-* *:00/15:00 UTC",
    ("collage", "retry_failed"): "*-*-* *:30:00 UTC",
    ("collage", "cleanup_temp"): "*-*-* 04:00:00 UTC",
    ("ximilar_sync", "ximilar_sync"): "Sun *-*-* 10:00:00 UTC",
    ("ximilar_sync", "ximilar_retry"): "*-*-* 12:00:00 UTC",
}


def _read(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep key case
    parser.read(path)
    return parser


def _unit(host: str) -> str:
    return "undecat-" + host.replace("_", "-")


@pytest.mark.parametrize(("host", "job"), sorted(SCHEDULE))
def test_each_job_has_a_timer_at_the_documents_time(host: str, job: str) -> None:
    """Every (host, job) has a timer firing at the document's schedule into its host's unit."""
    timer = _read(UNITS / f"{_unit(host)}-{job.replace('_', '-')}.timer")
    assert timer["Timer"]["OnCalendar"] == SCHEDULE[host, job]
    assert timer["Timer"]["Unit"] == f"{_unit(host)}@{job}.service"
    assert timer["Timer"]["Persistent"] == "true"


@pytest.mark.parametrize("host", sorted(HOST_JOBS))
def test_each_host_unit_runs_its_runner(host: str) -> None:
    """The service template runs runners/<host>.py with the job name and the host's .env."""
    service = _read(UNITS / f"{_unit(host)}@.service")["Service"]
    assert service["ExecStart"].endswith(f"runners/{host}.py %i")
    assert service["EnvironmentFile"] == f"/opt/unde/{host}/.env"
    assert service["Type"] == "oneshot"
    assert (Path(__file__).resolve().parents[1] / "runners" / f"{host}.py").exists()


def test_the_schedule_covers_every_job() -> None:
    """No job of HOST_JOBS is left without a timer."""
    assert set(SCHEDULE) == {(host, job) for host, jobs in HOST_JOBS.items() for job in jobs}


def test_calendar_expressions_parse() -> None:
    """Every OnCalendar expression parses (where systemd-analyze is installed)."""
    analyze = shutil.which("systemd-analyze")
    expressions = sorted(set(SCHEDULE.values()))
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    result = subprocess.run(
        [analyze, "calendar", *expressions], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
