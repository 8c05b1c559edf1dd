"""Each run writes a Prometheus text file (UNDECAT_METRICS_DIR), parsed back with the client."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes import FakeClock
from tests.fix_origin import Origin, Reply
from tests.fix_proxy import ProxyServer
from tests.fix_s3 import S3Bucket
from tests.photo_samples import noisy_jpeg, rgb_jpeg
from tests.test_download_e2e import add_products
from undecat.adapters.metrics import METRIC_NAMES, PrometheusTextfile, job_file
from undecat.adapters.postgres import Database, PostgresRunRecorder
from undecat.adapters.postgres.report import PostgresReport
from undecat.bootstrap import bootstrap
from undecat.config import Config
from undecat.domain.models import RunCounts, RunResult
from undecat.domain.report import run_items
from undecat.errors import DatabaseUnavailableError, ObjectStoreUnavailableError
from undecat.jobs.runlog import logged
from undecat.redact import Secret

DOCS = Path(__file__).resolve().parents[1] / "docs" / "metrics.md"


def parse(path: Path) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """The file's samples: metric name -> sorted labels -> value (via prometheus_client)."""
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(path.read_text(encoding="utf-8")):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def one(
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]], name: str, **labels: str
) -> float:
    """The value of the sample of ``name`` with exactly ``labels``."""
    return float(samples[name][tuple(sorted(labels.items()))])


@pytest.fixture
def env(  # noqa: PLR0917  # pytest passes fixtures positionally
    staging_db: Database,
    staging_dsn: str,
    s3_bucket: S3Bucket,
    proxy_server: ProxyServer,
    origin_ca: Path,
    origin: Origin,
    tmp_path: Path,
) -> dict[str, str]:
    """A photo_downloader host writing metrics into tmp_path/metrics."""
    return {
        "STAGING_DB_URL": staging_dsn,
        "PROXY_URL": proxy_server.url,
        "PROXY_CA_BUNDLE": str(origin_ca),
        "ALLOWED_PHOTO_HOSTS": ",".join(origin.allowed_hosts),
        "ALLOWED_PHOTO_HTTP_HOSTS": ",".join(origin.http_hosts),
        "DOWNLOAD_DELAY_MIN": "0",
        "DOWNLOAD_DELAY_MAX": "0",
        "BATCH_SIZE": "10",
        "DATA_DIR": str(tmp_path / "data"),
        "UNDECAT_METRICS_DIR": str(tmp_path / "metrics"),
        **s3_bucket.env(),
    }


def test_a_download_run_writes_its_metrics_file(
    env: dict[str, str], staging_db: Database, origin: Origin, tmp_path: Path
) -> None:
    """Timestamps, duration, status, items, proxy bytes and queue depths are in the files."""
    first, second, third = rgb_jpeg(), noisy_jpeg(), rgb_jpeg(colour=(1, 2, 3))
    origin.serve("/m/1.jpg", Reply(body=first))
    origin.serve("/m/2.jpg", Reply(body=second))
    origin.serve("/m/3.jpg", Reply(body=third))
    origin.serve("/m/missing.jpg", Reply(status=404))
    add_products(
        staging_db,
        {
            "m-1": [origin.url("/m/1.jpg"), origin.url("/m/2.jpg")],
            "m-2": [origin.url("/m/3.jpg")],
            "m-3": [origin.url("/m/missing.jpg")],
        },
    )
    before = time.time()
    with bootstrap(Config.from_env(env)) as jobs:
        result = jobs.job("photo_downloader", "download_pending").run()
    assert result.status == "partial"
    metrics = tmp_path / "metrics"
    samples = parse(job_file(metrics, "photo_downloader", "download_pending"))
    job = {"host": "photo_downloader", "job": "download_pending"}
    assert (
        before - 1 <= one(samples, "undecat_job_last_run_timestamp_seconds", **job) <= time.time()
    )
    assert one(samples, "undecat_job_last_success_timestamp_seconds", **job) >= before - 1
    assert 0 < one(samples, "undecat_job_last_run_duration_seconds", **job) < 120
    assert one(samples, "undecat_job_last_run_status", **job, status="partial") == 1
    assert one(samples, "undecat_job_last_run_status", **job, status="failed") == 0
    assert one(samples, "undecat_job_last_run_items", **job, outcome="done") == 2
    assert one(samples, "undecat_job_last_run_items", **job, outcome="failed") == 1
    assert one(samples, "undecat_job_last_run_proxy_bytes", **job) == len(first) + len(
        second
    ) + len(third)
    assert one(samples, "undecat_job_last_run_ximilar_records_sent", **job) == 0
    queue = parse(metrics / "undecat_queue.prom")
    assert one(queue, "undecat_queue_depth", stage="collage", status="pending", brand="zara") == 2
    assert one(queue, "undecat_queue_depth", stage="download", status="error", brand="zara") == 1
    assert sorted(p.name for p in metrics.iterdir()) == [
        "undecat_photo_downloader_download_pending.prom",
        "undecat_queue.prom",
    ]  # written by rename: no temporary file is left behind


def test_a_failed_run_keeps_the_last_success(
    staging_db: Database, staging_dsn: str, tmp_path: Path
) -> None:
    """After a success then a failure, last success stays the first run's and status is failed."""
    clock = FakeClock()
    metrics = PrometheusTextfile(
        tmp_path,
        "collage",
        clock,
        queue_depth=PostgresReport(staging_db).queue_depth,
    )
    recorder = PostgresRunRecorder(staging_db)
    ok = logged(recorder, "process_new", lambda: RunResult(status="success"), observers=[metrics])
    path = job_file(tmp_path, "collage", "process_new")
    first = parse(path)
    labels = {"host": "collage", "job": "process_new"}
    succeeded_at = one(first, "undecat_job_last_success_timestamp_seconds", **labels)
    clock.advance(600)

    def outage() -> RunResult:
        clock.advance(7)
        raise ObjectStoreUnavailableError("S3 put: bucket denied")

    failed = logged(recorder, "process_new", outage, observers=[metrics])
    second = parse(path)
    assert (ok.status, failed.status) == ("success", "failed")
    assert one(second, "undecat_job_last_success_timestamp_seconds", **labels) == succeeded_at
    assert one(second, "undecat_job_last_run_timestamp_seconds", **labels) == succeeded_at + 607
    assert one(second, "undecat_job_last_run_duration_seconds", **labels) == 7
    assert one(second, "undecat_job_last_run_status", **labels, status="failed") == 1


def test_a_run_whose_log_cannot_open_is_still_counted(staging_dsn: str, tmp_path: Path) -> None:
    """The database goes away before the run log opens: the file says failed, the error rises."""
    db = Database(Secret(staging_dsn), max_size=1)
    recorder = PostgresRunRecorder(db)
    db.close()
    metrics = PrometheusTextfile(tmp_path, "collage", FakeClock())
    with pytest.raises(DatabaseUnavailableError):
        logged(recorder, "process_new", lambda: RunResult(status="success"), observers=[metrics])
    samples = parse(job_file(tmp_path, "collage", "process_new"))
    labels = {"host": "collage", "job": "process_new"}
    assert one(samples, "undecat_job_last_run_status", **labels, status="failed") == 1
    assert "undecat_job_last_success_timestamp_seconds" not in samples


def test_an_unwritable_metrics_folder_does_not_fail_the_run(
    staging_db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Metrics that cannot be written are a warning; the run's result is unchanged."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the folder should be")
    metrics = PrometheusTextfile(blocker, "collage", FakeClock())
    with caplog.at_level(logging.WARNING):
        result = logged(
            PostgresRunRecorder(staging_db),
            "process_new",
            lambda: RunResult(status="success", records_fetched=3, records_updated=3),
            observers=[metrics],
        )
    assert result.status == "success"
    assert "metrics not written" in caplog.text


def test_every_metric_is_documented() -> None:
    """docs/metrics.md lists every metric name the adapter writes."""
    text = DOCS.read_text(encoding="utf-8")
    for name in METRIC_NAMES:
        assert f"`{name}`" in text, name


@given(
    fetched=st.integers(0, 10_000),
    failed=st.integers(0, 10_000),
    released=st.integers(0, 10_000),
    updated=st.integers(0, 10_000),
)
def test_run_items_never_count_more_than_were_taken(
    fetched: int, failed: int, released: int, updated: int
) -> None:
    """Done + failed + skipped equals what the run took whenever its counts are consistent."""
    result = RunResult(
        status="partial",
        records_fetched=fetched,
        records_errors=failed,
        records_updated=updated,
        metadata={"released": released, "dry_run": True},
    )
    items = run_items(result)
    assert min(items.done, items.failed, items.skipped) >= 0
    if fetched and failed + released <= fetched:
        assert items.done + items.failed + items.skipped == fetched
    if not fetched:
        assert items.done == updated


@given(outcomes=st.lists(st.sampled_from(["done", "failed", "skipped", "lease_lost"])))
def test_run_counts_are_what_the_metrics_read(outcomes: list[str]) -> None:
    """A job's counts reach the metrics as they were kept: every item taken ends once."""
    counts = RunCounts.of(skipping=("lease_lost",))
    counts.add(taken=len(outcomes))
    for outcome in outcomes:
        counts.add(**{outcome: 1})
    items = run_items(RunResult(status="success", records_fetched=999, items=counts.items()))
    assert items.done + items.failed + items.skipped == len(outcomes)
    assert (items.done, items.failed) == (outcomes.count("done"), outcomes.count("failed"))


def test_a_counter_a_run_did_not_declare_is_refused() -> None:
    """A misspelled counter name is a KeyError, not a count that silently stays zero."""
    counts = RunCounts.of("photos_stored")
    counts.add(photos_stored=2)
    with pytest.raises(KeyError, match="photo_stored"):
        counts.add(photo_stored=1)
    assert counts["photos_stored"] == 2


def test_queue_depth_counts_per_stage_status_and_brand(staging_db: Database) -> None:
    """Queue depth is counted per stage, status and brand from raw_products."""
    add_products(staging_db, {"q-1": ["https://static.zara.net/1.jpg"], "q-2": []})
    depths = {
        (d.stage, d.status, d.brand): d.count for d in PostgresReport(staging_db).queue_depth()
    }
    assert depths[("download", "pending", "zara")] == 2
    assert depths[("sync", "pending", "zara")] == 2


def test_a_terminal_run_draws_a_progress_bar(
    env: dict[str, str],
    staging_db: Database,
    origin: Origin,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With a terminal (progress on), the download run draws tqdm's bar over the stage's work."""
    origin.serve("/p/1.jpg", Reply(body=rgb_jpeg()))
    add_products(staging_db, {f"p-{n}": [origin.url("/p/1.jpg")] for n in range(4)})
    with bootstrap(Config.from_env(env), progress=True) as jobs:
        result = jobs.job("photo_downloader", "download_pending").run()
    assert (result.status, result.records_new) == ("success", 4)
    drawn = capsys.readouterr().err
    assert "download" in drawn
    assert "4/4" in drawn
    assert "product/s" in drawn
