"""``undecat health``: can this host run its jobs, and have they been running.

:func:`check_host` runs the checks of one host (the jobs of ``bootstrap.HOST_JOBS`` and the
dependencies those jobs use) and returns one :class:`~undecat.domain.health.CheckResult` per
check: the staging database reachable, migrated to the packaged migrations, and the role's
grants present; the bucket writable (put and delete of a probe key); the proxy answering;
the Ximilar token accepted (when set); the production database (scraper host); each job's
last success within its schedule plus slack. A dependency that cannot be reached is
``down``; a late job is ``degraded``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from undecat.config import Config
from undecat.domain.health import JOB_PERIODS, CheckResult, Severity, job_check
from undecat.errors import UndecatError
from undecat.redact import Secret, redact_text, secret_values

__all__ = ["HOST_DEPENDENCIES", "check_host"]

#: The outside dependencies each host's jobs use (beyond the staging database).
HOST_DEPENDENCIES: Mapping[str, tuple[str, ...]] = {
    "apify": (),
    "photo_downloader": ("bucket", "proxy"),
    "collage": ("bucket",),
    "ximilar_sync": ("ximilar",),
    "scraper": ("production",),
}

_PROBE_PREFIX = "_health/"


def check_host(config: Config, host: str, **overrides: Any) -> list[CheckResult]:
    """Run every check of ``host``; ``overrides`` replace adapters (``object_store``, ...)."""
    from undecat.bootstrap import HOST_JOBS  # noqa: PLC0415

    secrets = secret_values(config)
    checks: list[CheckResult] = []

    def run(name: str, check: Callable[[], str | CheckResult]) -> None:
        try:
            outcome = check()
        except UndecatError as exc:
            outcome = CheckResult(name, Severity.DOWN, redact_text(str(exc), secrets))
        if isinstance(outcome, str):
            outcome = CheckResult(name, Severity.OK, outcome)
        checks.append(outcome)

    checks.extend(_database_checks(config, host, HOST_JOBS.get(host, ()), secrets))
    for dependency in HOST_DEPENDENCIES.get(host, ()):
        if dependency == "bucket":
            run("bucket", lambda: _bucket(config, host, overrides.get("object_store")))
        elif dependency == "proxy":
            run("proxy", lambda: _proxy(config))
        elif dependency == "ximilar":
            run("ximilar", lambda: _ximilar(config, overrides.get("visual_index")))
        elif dependency == "production":
            run("production database", lambda: _production(config))
    return checks


def _database_checks(
    config: Config, host: str, jobs: tuple[str, ...], secrets: tuple[str, ...]
) -> Iterator[CheckResult]:
    from undecat.adapters.postgres import Database, load_migrations  # noqa: PLC0415
    from undecat.adapters.postgres.report import PostgresHealth  # noqa: PLC0415
    from undecat.bootstrap import _scraper_name  # noqa: PLC0415

    if config.staging_db_url is None:
        yield CheckResult("database", Severity.DOWN, "STAGING_DB_URL is not set")
        return
    try:
        db = Database(config.staging_db_url, name="staging", max_size=1, timeout=10.0)
    except UndecatError as exc:
        yield CheckResult("database", Severity.DOWN, redact_text(str(exc), secrets))
        return
    try:
        health = PostgresHealth(db)
        yield CheckResult("database", Severity.OK, "staging database reachable")
        yield _checked("migrations", lambda: _migrations(health, load_migrations), secrets)
        yield _checked("grants", lambda: _grants(health, host), secrets)
        try:
            names = {job: _scraper_name(host, job) for job in jobs}
            runs = health.job_runs(list(names.values()))
            now = health.now()
        except UndecatError as exc:
            yield CheckResult("jobs", Severity.DOWN, redact_text(str(exc), secrets))
            return
        for job, name in names.items():
            last_success, last_run = runs.get(name, (None, None))
            yield job_check(name, JOB_PERIODS.get((host, job)), last_success, last_run, now)
    finally:
        db.close()


def _checked(name: str, check: Callable[[], CheckResult], secrets: tuple[str, ...]) -> CheckResult:
    try:
        return check()
    except UndecatError as exc:
        return CheckResult(name, Severity.DOWN, redact_text(str(exc), secrets))


def _migrations(health: Any, load: Callable[[str], list[Any]]) -> CheckResult:
    expected = [m.filename for m in load("staging")]
    applied = health.applied_migrations()
    if applied is None:
        return CheckResult("migrations", Severity.DOWN, "never migrated: run `undecat migrate`")
    pending = [name for name in expected if name not in applied]
    if pending:
        return CheckResult(
            "migrations",
            Severity.DOWN,
            f"{len(pending)} pending ({', '.join(pending)}): run `undecat migrate`",
        )
    unknown = sorted(applied - set(expected))
    latest = expected[-1] if expected else "none"
    if unknown:
        return CheckResult(
            "migrations",
            Severity.OK,
            f"at {latest}; the database also has newer {', '.join(unknown)} (upgrade this host)",
        )
    return CheckResult("migrations", Severity.OK, f"up to date ({latest})")


def _grants(health: Any, host: str) -> CheckResult:
    missing = health.missing_grants(host)
    if missing:
        return CheckResult("grants", Severity.DOWN, "the role lacks " + "; ".join(missing))
    return CheckResult("grants", Severity.OK, f"the role has every grant the {host} jobs use")


def _bucket(config: Config, host: str, store: Any) -> str:
    from undecat.adapters.objectstore import open_object_store  # noqa: PLC0415
    from undecat.settings import object_store_settings  # noqa: PLC0415

    own = store is None
    if own:
        store = open_object_store(object_store_settings(config))
    try:
        folder = f"{_PROBE_PREFIX}{host}-{uuid.uuid4().hex}"
        key = f"{folder}/probe.txt"
        store.put(key, b"undecat health probe\n", "text/plain")
        removed = store.delete_prefix(folder)
        if removed < 1:
            raise UndecatError(
                f"bucket {config.s3_bucket}: the probe {key} was written but not deleted"
            )
    finally:
        if own:
            store.close()
    return f"bucket {config.s3_bucket} writable (put and delete of a probe key)"


def _proxy(config: Config) -> str:
    from undecat.adapters.http.probe import probe_proxy  # noqa: PLC0415

    if config.proxy_url is None:
        return "PROXY_URL not set: photos are fetched directly"
    return probe_proxy(config.proxy_url, config.health_proxy_probe_url)


def _ximilar(config: Config, index: Any) -> str:
    if config.ximilar_api_token is None and index is None:
        return "XIMILAR_API_TOKEN not set: the sync runs as a dry run"
    own = index is None
    if own:
        from undecat.adapters.clock import SystemClock  # noqa: PLC0415
        from undecat.adapters.ximilar import RateLimiter, XimilarClient  # noqa: PLC0415

        if config.ximilar_collection_id is None:
            raise UndecatError("XIMILAR_COLLECTION_ID is not set")
        assert config.ximilar_api_token is not None  # noqa: S101  # checked above
        index = XimilarClient(
            config.ximilar_api_url,
            config.ximilar_api_prefix,
            config.ximilar_api_token,
            config.ximilar_collection_id,
            limiter=RateLimiter(config.ximilar_rate_limit, SystemClock()),
            clock=SystemClock(),
            timeout=10.0,
            backoff=(),
        )
    try:
        index.existing(["undecat-health-probe"])
    finally:
        if own:
            index.close()
    return f"Ximilar accepted the token ({config.ximilar_api_url})"


def _production(config: Config) -> str | CheckResult:
    from undecat.adapters.postgres import Database, load_migrations  # noqa: PLC0415
    from undecat.adapters.postgres.report import PostgresHealth  # noqa: PLC0415

    url: Secret | None = config.production_db_url
    if url is None:
        return CheckResult("production database", Severity.DOWN, "PRODUCTION_DB_URL is not set")
    with Database(url, name="production", max_size=1, timeout=10.0) as db:
        applied = PostgresHealth(db).applied_migrations() or set()
    pending = [m.filename for m in load_migrations("production") if m.filename not in applied]
    if pending:
        return CheckResult(
            "production database",
            Severity.DOWN,
            f"reachable, {len(pending)} migration(s) pending ({', '.join(pending)}):"
            " run `undecat migrate --database production`",
        )
    return "production database reachable and migrated"
