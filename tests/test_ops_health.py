"""``undecat health``: one line per check, --json, exit 0 healthy / 1 degraded / 2 down."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from tests.fix_db import PgServer
from tests.fix_origin import Origin
from tests.fix_proxy import ProxyServer
from tests.fix_s3 import READONLY_ACCESS_KEY, READONLY_SECRET_KEY, S3Bucket
from tests.fix_ximilar import COLLECTION, PREFIX, TOKEN, FakeXimilar
from undecat import cli
from undecat.adapters.postgres import Database, apply_migrations
from undecat.adapters.postgres.embedded import EmbeddedPostgres
from undecat.bootstrap import HOST_JOBS
from undecat.config import Config
from undecat.domain.health import JOB_PERIODS, CheckResult, Severity, exit_code, job_check, slack
from undecat.ops.health import check_host
from undecat.redact import Secret

ROOT = Path(__file__).resolve().parents[1]
UNITS = ROOT / "deploy" / "systemd"


def _log_runs(dsn: str, name: str, *ages_and_statuses: tuple[timedelta, str]) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for age, status in ages_and_statuses:
            conn.execute(
                "INSERT INTO scraper_logs (scraper_name, status, started_at, completed_at)"
                " VALUES (%s, %s, now() - %s, now() - %s)",
                (name, status, age, age),
            )


def _fresh_collage_runs(dsn: str) -> None:
    minutes = timedelta(minutes=5)
    for name in ("collage.retry_failed", "collage.cleanup_temp", "process_new", "retention"):
        _log_runs(dsn, name, (minutes, "success"))


def _env(staging_dsn: str, bucket: S3Bucket, **extra: str) -> dict[str, str]:
    return {"STAGING_DB_URL": staging_dsn, **bucket.env(), **extra}


def _by_name(checks: list[CheckResult]) -> dict[str, CheckResult]:
    return {c.name: c for c in checks}


def _period(expression: str) -> timedelta:
    """The period of a systemd OnCalendar expression of the kinds our timers use."""
    expression = expression.removesuffix(" UTC")
    if expression.startswith(("Mon ", "Tue ", "Wed ", "Thu ", "Fri ", "Sat ", "Sun ")):
        return timedelta(days=7)
    if m := re.fullmatch(r"\*-\*-\* \*:\d\d/(\d+):00", expression):
        return timedelta(minutes=int(m.group(1)))
    if re.fullmatch(r"\*-\*-\* \*:\d\d:00", expression):
        return timedelta(hours=1)
    if re.fullmatch(r"\*-\*-\* \d\d:\d\d:00", expression):
        return timedelta(days=1)
    raise AssertionError(f"cannot read the period of {expression!r}: teach _period")


TIMERS = sorted(UNITS.glob("undecat-*.timer"))


@pytest.mark.parametrize("timer", TIMERS, ids=[t.name for t in TIMERS])
def test_job_periods_match_the_systemd_timers(timer: Path) -> None:
    """The period health judges each timed job by is the period of its timer's OnCalendar."""
    text = timer.read_text()
    calendar = re.search(r"^OnCalendar=(.+)$", text, re.M)
    unit = re.search(r"^Unit=undecat-(.+)@(.+)\.service$", text, re.M)
    assert calendar is not None
    assert unit is not None
    host, job = unit.group(1).replace("-", "_"), unit.group(2)
    period = _period(calendar.group(1))
    assert JOB_PERIODS.get((host, job)) == period, (
        f"add ({host!r}, {job!r}): {period!r} to undecat.domain.health.JOB_PERIODS"
    )


def test_every_period_belongs_to_a_job() -> None:
    """JOB_PERIODS names only jobs that exist (a renamed job cannot keep a stale row)."""
    jobs = {(host, job) for host, names in HOST_JOBS.items() for job in names}
    assert set(JOB_PERIODS) <= jobs, sorted(set(JOB_PERIODS) - jobs)


def test_job_check_is_late_only_past_period_plus_slack() -> None:
    """A job is degraded exactly when its last success is older than period + slack."""
    now = datetime(2026, 12, 6, 12, tzinfo=UTC)
    period = timedelta(minutes=15)
    allowed = period + slack(period)
    on_time = job_check("j", period, now - allowed, None, now)
    late = job_check("j", period, now - allowed - timedelta(seconds=1), None, now)
    never = job_check("j", period, None, None, now)
    assert (on_time.severity, late.severity, never.severity) == (
        Severity.OK,
        Severity.DEGRADED,
        Severity.DEGRADED,
    )
    assert exit_code([on_time]) == 0
    assert exit_code([on_time, late]) == 1


def test_healthy_collage_host_exits_0(
    staging_db: Database,
    staging_dsn: str,
    s3_bucket: S3Bucket,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Database migrated, grants present, bucket writable and jobs on time: exit 0, all ok."""
    _fresh_collage_runs(staging_dsn)
    for key, value in _env(staging_dsn, s3_bucket).items():
        monkeypatch.setenv(key, value)
    code = cli.main(["health", "--host", "collage"])
    out = capsys.readouterr().out
    assert code == 0, out
    lines = [line for line in out.splitlines() if line.startswith(("ok", "degraded", "down"))]
    assert {line.split()[2] for line in lines} >= {"database", "migrations", "grants", "bucket"}
    assert all(line.startswith("ok") for line in lines), out
    assert out.strip().endswith("healthy")
    # The probe key was deleted again.
    listing = s3_bucket.client.list_objects_v2(Bucket=s3_bucket.bucket)
    assert listing.get("KeyCount", 0) == 0


def test_late_job_exits_1_degraded(
    staging_db: Database,
    staging_dsn: str,
    s3_bucket: S3Bucket,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """process_new last succeeded 2 hours ago (every 15 minutes): degraded, exit 1."""
    _fresh_collage_runs(staging_dsn)
    with psycopg.connect(staging_dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM scraper_logs WHERE scraper_name = 'process_new'")
    _log_runs(
        staging_dsn,
        "process_new",
        (timedelta(hours=2), "success"),
        (timedelta(minutes=3), "failed"),
    )
    for key, value in _env(staging_dsn, s3_bucket).items():
        monkeypatch.setenv(key, value)
    code = cli.main(["health", "--host", "collage", "--json"])
    document = json.loads(capsys.readouterr().out)
    assert code == 1
    assert document["status"] == "degraded"
    checks = {c["check"]: c for c in document["hosts"]["collage"]}
    assert checks["job process_new"]["status"] == "degraded"
    assert "late" in checks["job process_new"]["detail"]
    assert "failed" in checks["job process_new"]["detail"]
    assert checks["bucket"]["status"] == "ok"


def test_stopped_postgres_exits_2_down(s3_bucket: S3Bucket) -> None:
    """A PostgreSQL that was migrated and then stopped: the runner's health says down, exit 2."""
    server = EmbeddedPostgres().start()
    try:
        dsn = server.dsn_for("postgres")
        apply_migrations(Secret(dsn), "staging")
    finally:
        server.stop()
    env = {
        "PATH": "/usr/bin:/bin",
        "STAGING_DB_URL": dsn,
        **s3_bucket.env(),
    }
    done = subprocess.run(
        [sys.executable, str(ROOT / "runners" / "collage.py"), "health", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    document = json.loads(done.stdout)
    checks = {c["check"]: c for c in document["hosts"]["collage"]}
    assert checks["database"]["status"] == "down"
    assert "unavailable" in checks["database"]["detail"]
    assert "undecat-embedded" not in done.stdout + done.stderr  # the password stays out
    assert checks["bucket"]["status"] == "ok"


def test_read_only_bucket_exits_2_down(
    staging_db: Database,
    staging_dsn: str,
    s3_bucket: S3Bucket,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Keys that may read but not write the bucket: the bucket check is down, exit 2."""
    _fresh_collage_runs(staging_dsn)
    env = _env(
        staging_dsn,
        s3_bucket,
        S3_ACCESS_KEY=READONLY_ACCESS_KEY,
        S3_SECRET_KEY=READONLY_SECRET_KEY,
    )
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    code = cli.main(["health", "--host", "collage"])
    out = capsys.readouterr().out
    assert code == 2, out
    bucket_line = next(line for line in out.splitlines() if " bucket " in line)
    assert bucket_line.startswith("down"), bucket_line
    assert READONLY_SECRET_KEY not in out


def test_missing_migration_is_down(empty_dsn: str, s3_bucket: S3Bucket) -> None:
    """A database that was never migrated cannot run the jobs: the migrations check is down."""
    config = Config.from_env({"STAGING_DB_URL": empty_dsn, **s3_bucket.env()})
    checks = _by_name(check_host(config, "collage"))
    assert checks["migrations"].severity is Severity.DOWN
    assert "undecat migrate" in checks["migrations"].detail


def test_grants_are_checked_for_the_hosts_role(
    staging_db: Database, staging_dsn: str, pg_server: PgServer
) -> None:
    """A login in the collage role has the collage host's grants, not the scraper host's."""
    login = f"collage_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server.admin_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {login} LOGIN PASSWORD 'pw-{login}' IN ROLE collage")
    try:
        dbname = staging_dsn.rsplit("/", 1)[1]
        dsn = pg_server.dsn_for(dbname, user=login, password=f"pw-{login}")
        config = Config.from_env({"STAGING_DB_URL": dsn})
        collage = _by_name(check_host(config, "collage"))
        scraper = _by_name(check_host(config, "scraper"))
    finally:
        with psycopg.connect(pg_server.admin_dsn, autocommit=True) as conn:
            conn.execute(f"DROP ROLE {login}")
    assert collage["grants"].severity is Severity.OK
    assert scraper["grants"].severity is Severity.DOWN
    assert "raw_availability" in scraper["grants"].detail


def test_proxy_answering_and_refusing(
    staging_db: Database,
    staging_dsn: str,
    s3_bucket: S3Bucket,
    proxy_server: ProxyServer,
    origin: Origin,
) -> None:
    """Through the real proxy the probe is ok; with a wrong password (407) it is down."""
    origin.serve_default(None)  # any answer of the target will do: a 404 here
    probe = origin.url("/health-probe")
    good = Config.from_env(
        _env(staging_dsn, s3_bucket, PROXY_URL=proxy_server.url, HEALTH_PROXY_PROBE_URL=probe)
    )
    bad_url = proxy_server.url_with("wrong-password-123")
    bad = Config.from_env(
        _env(staging_dsn, s3_bucket, PROXY_URL=bad_url, HEALTH_PROXY_PROBE_URL=probe)
    )
    ok = _by_name(check_host(good, "photo_downloader"))["proxy"]
    refused = _by_name(check_host(bad, "photo_downloader"))["proxy"]
    assert ok.severity is Severity.OK, ok
    assert refused.severity is Severity.DOWN, refused
    assert "407" in refused.detail
    assert "wrong-password-123" not in refused.detail


def test_proxy_unreachable_is_down(staging_db: Database, staging_dsn: str, proxy_down: str) -> None:
    """Nobody listening at PROXY_URL: the proxy check is down."""
    config = Config.from_env({"STAGING_DB_URL": staging_dsn, "PROXY_URL": proxy_down})
    checks = _by_name(check_host(config, "photo_downloader"))
    assert checks["proxy"].severity is Severity.DOWN


def test_ximilar_token_accepted_or_refused(
    staging_db: Database, staging_dsn: str, fake_ximilar: FakeXimilar
) -> None:
    """The fake collection accepts the right token (ok) and refuses a wrong one (down)."""

    def config(token: str) -> Config:
        return Config.from_env(
            {
                "STAGING_DB_URL": staging_dsn,
                "XIMILAR_API_URL": fake_ximilar.url,
                "XIMILAR_API_PREFIX": PREFIX,
                "XIMILAR_API_TOKEN": token,
                "XIMILAR_COLLECTION_ID": COLLECTION,
            }
        )

    accepted = _by_name(check_host(config(TOKEN), "ximilar_sync"))["ximilar"]
    refused = _by_name(check_host(config("not-the-token-42"), "ximilar_sync"))["ximilar"]
    assert accepted.severity is Severity.OK, accepted
    assert refused.severity is Severity.DOWN, refused
    assert "not-the-token-42" not in refused.detail
