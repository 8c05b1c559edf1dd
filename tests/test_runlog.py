"""Every run is logged in scraper_logs and the runner's exit code says whether it did its job."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import attrs
import pytest

from undecat.adapters.postgres import Database, PostgresRunRecorder
from undecat.bootstrap import HOST_JOBS, bootstrap
from undecat.config import Config
from undecat.domain.models import RunLog, RunResult
from undecat.errors import ConfigError, DatabaseUnavailableError
from undecat.jobs.runlog import Job, StopToken, logged
from undecat.ports import RunningLog


@attrs.define
class MemoryRecorder:
    """An in-memory RunRecorder (a fake of our own port, for job unit tests)."""

    runs: dict[int, dict[str, Any]] = attrs.field(factory=dict)

    @attrs.frozen
    class Open:
        """An open run."""

        id: int
        started_at: datetime

    def start(self, scraper_name: str, metadata: dict[str, Any] | None = None) -> Open:
        run = self.Open(len(self.runs) + 1, datetime.now(UTC))
        self.runs[run.id] = {"name": scraper_name, "status": "running"}
        return run

    def finish(self, run: RunningLog, result: RunResult) -> None:
        self.runs[run.id].update(status=result.status, error=result.error_message)

    def recent(self, scraper_name: str | None = None, limit: int = 20) -> list[RunLog]:
        return []


def test_a_successful_run_is_closed_with_its_counts(staging_db: Database) -> None:
    """A run's counts, metadata and duration land in its scraper_logs row."""
    recorder = PostgresRunRecorder(staging_db)
    result = logged(
        recorder,
        "apify_zara",
        lambda: RunResult(status="success", records_fetched=10, records_new=4, metadata={"x": 1}),
    )
    assert result.status == "success"
    (log,) = recorder.recent("apify_zara")
    assert (log.records_fetched, log.records_new, log.status) == (10, 4, "success")
    assert log.metadata == {"x": 1}
    assert log.duration_seconds is not None
    assert log.completed_at is not None


def test_an_outage_is_logged_failed_with_the_secret_scrubbed(staging_db: Database) -> None:
    """An UndecatError from the work closes the run as failed with a scrubbed message."""
    recorder = PostgresRunRecorder(staging_db, secrets=("proxy-pw-9",))

    def work() -> RunResult:
        raise DatabaseUnavailableError("proxy http://u:proxy-pw-9@h:1 said proxy-pw-9")

    result = logged(recorder, "download_pending", work)
    assert result.status == "failed"
    (log,) = recorder.recent("download_pending")
    assert log.status == "failed"
    assert log.error_message is not None
    assert "proxy-pw-9" not in log.error_message
    assert log.error_message.startswith("DatabaseUnavailableError: ")


def test_a_bug_is_logged_failed_and_still_raised() -> None:
    """An unexpected exception is recorded as failed, then propagates (it is a bug)."""
    recorder = MemoryRecorder()

    def work() -> RunResult:
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        Job("process_new", work, recorder).run()
    assert recorder.runs[1]["status"] == "failed"
    assert "ZeroDivisionError" in recorder.runs[1]["error"]


def test_unknown_host_or_job_is_a_config_error() -> None:
    """Asking for a job a host does not have names the host's jobs."""
    jobs = bootstrap(Config())
    with pytest.raises(ConfigError, match="unknown host 'nope'"):
        jobs.job("nope", "x")
    with pytest.raises(ConfigError, match="expected one of download_pending, retry_failed"):
        jobs.job("photo_downloader", "process_new")


def test_a_misspelled_override_is_an_error_naming_the_known_names() -> None:
    """An override bootstrap does not know is refused, not silently ignored."""
    overrides: dict[str, Any] = {"objcet_store": object()}
    with pytest.raises(TypeError, match="unknown bootstrap override 'objcet_store'") as caught:
        bootstrap(Config(), **overrides)
    assert "object_store" in str(caught.value)
    assert "clock" in str(caught.value)


def test_an_override_replaces_the_adapter_it_names() -> None:
    """A passed adapter is what the jobs get, and bootstrap does not close it."""
    stop, argv, recorder = StopToken(), ("--no-delist",), MemoryRecorder()
    with bootstrap(Config(), stop=stop, argv=argv, recorder=recorder) as jobs:
        assert jobs.resources.stop() is stop
        assert jobs.resources.argv() is argv
        job = jobs.job("collage", "cleanup_temp")
        assert (job.stop, job.recorder) == (stop, recorder)


def test_job_names_are_the_documents() -> None:
    """The runners take exactly the source document's job names."""
    assert HOST_JOBS["apify"] == (
        "apify_zara",
        "apify_bershka",
        "apify_pullandbear",
        "apify_stradivarius",
        "apify_massimodutti",
        "apify_oysho",
    )
    assert HOST_JOBS["photo_downloader"] == ("download_pending", "retry_failed", "cleanup_temp")
    # retention is ours (issue 17: run-log and delisted-object retention), not the document's.
    assert HOST_JOBS["collage"] == ("process_new", "retry_failed", "cleanup_temp", "retention")
    assert HOST_JOBS["ximilar_sync"] == ("ximilar_sync", "ximilar_retry")
    assert HOST_JOBS["scraper"] == (
        "availability_poll",
        "sync_to_production",
        "stores_refresh",
        "availability_retention",
    )


@pytest.mark.parametrize("host", sorted(HOST_JOBS))
def test_runner_without_database_url_exits_2_with_one_line(host: str) -> None:
    """Each runner started without STAGING_DB_URL says so in one line and exits 2."""
    job = HOST_JOBS[host][0]
    result = subprocess.run(
        [sys.executable, f"runners/{host}.py", job],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
        timeout=60,
        check=False,
    )
    lines = [line for line in result.stderr.splitlines() if line.startswith("undecat:")]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1
    assert "is not set" in lines[0] or "not available" in lines[0]
