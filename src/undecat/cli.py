"""The ``undecat`` command and the per-host runners.

    undecat migrate --database staging|production [--url URL]
    undecat run HOST JOB             (what runners/HOST.py JOB does)
    undecat status                   (products by brand and status, latest runs)
    undecat demo                     (the whole pipeline on embedded defaults)
    undecat runs | show | pilot | notify-failure   (operator commands, docs/runbook.md)

Exit codes: 0 the job did its work; 1 it failed (logged in ``scraper_logs``);
2 bad configuration or usage (one line naming the problem).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from undecat.config import Config
from undecat.errors import ConfigError, CredentialsError, UndecatError
from undecat.redact import Secret, redact_text

__all__ = ["main", "run_host"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_log = logging.getLogger("undecat")


def _setup_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _fail(message: str, config: Config | None = None) -> None:
    from undecat.redact import secret_values  # noqa: PLC0415

    secrets = secret_values(config) if config is not None else ()
    print(f"undecat: {redact_text(message, secrets)}", file=sys.stderr)  # noqa: T201


#: Hosts whose jobs take options of their own (the rest refuse any argument after JOB).
_HOSTS_WITH_OPTIONS = frozenset({"apify"})


def run_host(host: str, argv: Sequence[str]) -> int:
    """Run one job of ``host`` (the runners' entry point); return the exit code.

    The exit code follows :func:`undecat.domain.outcome.exit_code`: 0 the run did its work,
    1 it failed (every product failing counts), 2 configuration (incl. a refused password).
    """
    from undecat.bootstrap import bootstrap, host_jobs  # noqa: PLC0415
    from undecat.domain.outcome import exit_code  # noqa: PLC0415

    parser = argparse.ArgumentParser(
        prog=f"undecat-{host.replace('_', '-')}", description=f"Run a job of the {host} host."
    )
    parser.add_argument("--version", action="version", version=_version())
    parser.add_argument("job")
    args, extra = parser.parse_known_args(list(argv))
    _setup_logging()
    config: Config | None = None
    try:
        config = Config.from_env()
        _check_command(host_jobs(config.brands), host, args.job, extra)
        with bootstrap(config, argv=tuple(extra)) as jobs:
            result = jobs.job(host, args.job).run()
    except (ConfigError, CredentialsError) as exc:
        _fail(str(exc), config)
        return EXIT_USAGE
    except UndecatError as exc:
        _fail(f"{host} {args.job}: {exc}", config)
        return EXIT_FAILED
    # A failed run's reason was logged once, at ERROR, with its summary (jobs.runlog).
    return exit_code(result)


def _check_command(
    known: dict[str, tuple[str, ...]], host: str, job: str, extra: Sequence[str]
) -> None:
    """ConfigError for an unknown host or job, or arguments a job does not take."""
    if host not in known:
        raise ConfigError(f"unknown host {host!r}; expected one of {', '.join(known)}")
    if job not in known[host]:
        raise ConfigError(
            f"unknown job {job!r} for {host}; expected one of {', '.join(known[host])}"
        )
    if extra and host not in _HOSTS_WITH_OPTIONS:
        raise ConfigError(f"{host} {job} takes no arguments; got {' '.join(extra)}")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        return f"undecat {version('undecat')}"
    except PackageNotFoundError:  # pragma: no cover - running from a bare source tree
        return "undecat (not installed)"


def _migrate(args: argparse.Namespace) -> int:
    from undecat.adapters.postgres import apply_migrations  # noqa: PLC0415

    config = Config.from_env()
    url = (
        Secret(args.url)
        if args.url
        else (config.staging_db_url if args.database == "staging" else config.production_db_url)
    )
    if url is None:
        variable = "STAGING_DB_URL" if args.database == "staging" else "PRODUCTION_DB_URL"
        raise ConfigError(f"{variable} is not set (or pass --url)")
    applied = apply_migrations(
        url,
        args.database,
        Path(args.sql_dir) if args.sql_dir else None,
        lock_timeout=config.migrate_lock_timeout,
        attempts=config.migrate_attempts,
    )
    print(  # noqa: T201
        f"{args.database}: applied {len(applied)} migration(s)"
        + (": " + ", ".join(applied) if applied else " (up to date)")
    )
    return EXIT_OK


def _status(_: argparse.Namespace) -> int:
    from undecat.adapters.postgres import Database, PostgresRunRecorder, PostgresStatusReport  # noqa: PLC0415

    config = Config.from_env()
    if config.staging_db_url is None:
        raise ConfigError("STAGING_DB_URL is not set")
    with Database(config.staging_db_url, max_size=1) as db:
        counts = PostgresStatusReport(db).status_counts()
        runs = PostgresRunRecorder(db).recent(limit=10)
    print(f"{'brand':14} {'image':14} {'ximilar':9} {'sync':8} {'count':>8}")  # noqa: T201
    for row in counts:
        print(  # noqa: T201
            f"{row.brand:14} {row.image_status:14} {row.ximilar_status:9}"
            f" {row.sync_status:8} {row.count:8d}"
        )
    print("\nlatest runs:")  # noqa: T201
    for run in runs:
        print(  # noqa: T201
            f"  {run.started_at:%Y-%m-%d %H:%M} {run.scraper_name:32} {run.status:8}"
            f" fetched={run.records_fetched} new={run.records_new} errors={run.records_errors}"
        )
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    return run_host(args.host, [args.job, *args.rest])


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``undecat`` command."""
    from undecat.operator_cli import add_operator_commands  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="undecat", description="UNDE catalog pipeline.")
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(dest="command", required=True)
    migrate = commands.add_parser("migrate", help="apply pending schema migrations")
    migrate.add_argument("--database", choices=("staging", "production"), default="staging")
    migrate.add_argument("--url", help="database URL (default: STAGING_DB_URL / PRODUCTION_DB_URL)")
    migrate.add_argument(
        "--sql-dir", help="folder holding staging/ and production/ (default: ours)"
    )
    migrate.set_defaults(func=_migrate)
    status = commands.add_parser("status", help="products by brand and status, latest runs")
    status.set_defaults(func=_status)
    # `demo` parses its own options (undecat.demo.main); listed here for --help.
    commands.add_parser("demo", help="the whole pipeline on embedded defaults (no credentials)")
    run = commands.add_parser("run", help="run one job of a host")
    run.add_argument("host")
    run.add_argument("job")
    run.add_argument("rest", nargs=argparse.REMAINDER)
    run.set_defaults(func=_run)
    add_operator_commands(commands)
    given = list(sys.argv[1:] if argv is None else argv)
    if given[:1] == ["demo"]:
        from undecat.demo import main as demo_main  # noqa: PLC0415

        _setup_logging()
        try:
            return demo_main(given[1:])
        except UndecatError as exc:  # e.g. the embedded extra is missing: one line, no trace
            _fail(f"demo: {exc}")
            return EXIT_USAGE
    args = parser.parse_args(given)
    try:
        return int(args.func(args))
    except (ConfigError, CredentialsError) as exc:
        _fail(str(exc))
        return EXIT_USAGE
    except UndecatError as exc:
        _fail(str(exc))
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
