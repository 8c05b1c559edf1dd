"""The ``undecat`` command and the per-host runners.

    undecat migrate --database staging|production [--url URL]
    undecat run HOST JOB             (what runners/HOST.py JOB does)
    undecat status                   (products by brand and status, queues, latest runs)
    undecat requeue --stage STAGE [--brand B] [--reason TEXT] [--dry-run]
    undecat demo                     (the whole pipeline on embedded defaults)

Exit codes: 0 the job did its work; 1 it failed (logged in ``scraper_logs``);
2 bad configuration or usage (one line naming the problem); 128 + the signal's number when
a job was stopped by SIGTERM / SIGINT (143 / 130; logged ``interrupted``).

A runner asked to stop (systemd's SIGTERM, Ctrl-C) sets the job's stop token: the job starts
nothing more, finishes or abandons the item in hand, releases its unstarted claims and
closes its run log ``interrupted``. If it has not returned within ``STOP_GRACE_SECONDS``
(or on a second signal) the process exits at once; its leases lapse and its run log is
marked ``abandoned`` by the job's next start on the host.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from undecat.config import Config
from undecat.domain.status import RunStatus
from undecat.errors import ConfigError, UndecatError
from undecat.jobs.runlog import StopToken
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


@contextmanager
def _stop_on_signals(stop: StopToken, grace: float) -> Iterator[list[int]]:
    """Turn SIGTERM / SIGINT into a stop request, with a hard exit after ``grace`` seconds.

    Yields a list that holds the number of the signal received (empty while none came).
    Handlers are installed only in the main thread (where Python delivers signals).
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def hard_exit(signum: int) -> None:
        _log.error("did not stop within STOP_GRACE_SECONDS (%gs): exiting now", grace)
        logging.shutdown()
        os._exit(128 + signum)

    def handle(signum: int, _: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if received:  # a second signal: no more grace
            hard_exit(signum)
        received.append(signum)
        _log.warning("%s received: stopping (grace %gs)", name, grace)
        stop.request(name)
        timer = threading.Timer(grace, hard_exit, args=(signum,))
        timer.daemon = True
        timers.append(timer)
        timer.start()

    timers: list[threading.Timer] = []
    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield received
    finally:
        for timer in timers:  # the job returned in time: no hard exit
            timer.cancel()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_host(host: str, argv: Sequence[str]) -> int:
    """Run one job of ``host`` (the runners' entry point); return the exit code."""
    from undecat.bootstrap import HOST_JOBS, bootstrap  # noqa: PLC0415

    parser = argparse.ArgumentParser(
        prog=f"runners/{host}.py", description=f"Run a job of the {host} host."
    )
    parser.add_argument("job", choices=HOST_JOBS.get(host, ()))
    args, extra = parser.parse_known_args(list(argv))
    _setup_logging()
    config: Config | None = None
    stop = StopToken()
    try:
        config = Config.from_env()
        with (
            _stop_on_signals(stop, config.stop_grace_seconds) as received,
            bootstrap(config, argv=tuple(extra), stop=stop) as jobs,
        ):
            result = jobs.job(host, args.job).run()
    except ConfigError as exc:
        _fail(str(exc), config)
        return EXIT_USAGE
    except UndecatError as exc:
        _fail(f"{host} {args.job}: {exc}", config)
        return EXIT_FAILED
    if result.status == RunStatus.FAILED:
        _fail(f"{host} {args.job} failed: {result.error_message}", config)
        return EXIT_FAILED
    if result.status == RunStatus.INTERRUPTED:
        _fail(f"{host} {args.job} interrupted: {result.error_message}", config)
        return 128 + (received[0] if received else signal.SIGTERM)
    return EXIT_OK


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
    applied = apply_migrations(url, args.database, Path(args.sql_dir) if args.sql_dir else None)
    print(  # noqa: T201
        f"{args.database}: applied {len(applied)} migration(s)"
        + (": " + ", ".join(applied) if applied else " (up to date)")
    )
    return EXIT_OK


def _status(_: argparse.Namespace) -> int:
    from undecat.adapters.postgres import (  # noqa: PLC0415
        Database,
        PostgresRunRecorder,
        PostgresStatusReport,
        PostgresWorkQueue,
    )
    from undecat.domain.stages import Stage  # noqa: PLC0415

    config = Config.from_env()
    if config.staging_db_url is None:
        raise ConfigError("STAGING_DB_URL is not set")
    with Database(config.staging_db_url, max_size=1) as db:
        counts = PostgresStatusReport(db).status_counts()
        queues = [
            PostgresWorkQueue(db, stage, max_attempts=config.max_retries).counts()
            for stage in Stage
        ]
        runs = PostgresRunRecorder(db).recent(limit=10)
    print(f"{'brand':14} {'image':14} {'ximilar':9} {'sync':8} {'count':>8}")  # noqa: T201
    for row in counts:
        print(  # noqa: T201
            f"{row.brand:14} {row.image_status:14} {row.ximilar_status:9}"
            f" {row.sync_status:8} {row.count:8d}"
        )
    print(  # noqa: T201
        f"\n{'stage':9} {'claimable':>9} {'leased':>7} {'stale':>6} {'failed':>7}"
        f" {'exhausted':>9} {'waiting':>8}"
    )
    for q in queues:
        print(  # noqa: T201
            f"{q.stage.value:9} {q.claimable:9d} {q.leased:7d} {q.stale:6d} {q.failed:7d}"
            f" {q.exhausted:9d} {q.waiting:8d}"
        )
    print("\nlatest runs:")  # noqa: T201
    for run in runs:
        print(  # noqa: T201
            f"  {run.started_at:%Y-%m-%d %H:%M} {run.scraper_name:32} {run.status:8}"
            f" fetched={run.records_fetched} new={run.records_new} errors={run.records_errors}"
        )
    return EXIT_OK


def _requeue(args: argparse.Namespace) -> int:
    from undecat.adapters.postgres import Database, PostgresWorkQueue  # noqa: PLC0415
    from undecat.domain.stages import Stage  # noqa: PLC0415

    config = Config.from_env()
    if config.staging_db_url is None:
        raise ConfigError("STAGING_DB_URL is not set")
    stage = Stage(args.stage)
    with Database(config.staging_db_url, max_size=1) as db:
        queue = PostgresWorkQueue(db, stage, max_attempts=config.max_retries)
        count = queue.requeue(brand=args.brand, reason=args.reason, dry_run=args.dry_run)
    verb = "would requeue" if args.dry_run else "requeued"
    print(f"{stage.value}: {verb} {count} product(s)")  # noqa: T201
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    return run_host(args.host, [args.job, *args.rest])


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``undecat`` command."""
    parser = argparse.ArgumentParser(prog="undecat", description="UNDE catalog pipeline.")
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
    requeue = commands.add_parser(
        "requeue", help="put a stage's failed (given-up) products back with fresh attempts"
    )
    requeue.add_argument(
        "--stage", required=True, choices=("download", "collage", "ximilar", "sync")
    )
    requeue.add_argument("--brand", help="only this brand's products")
    requeue.add_argument("--reason", help="only products whose stage error contains this text")
    requeue.add_argument("--dry-run", action="store_true", help="count them, change nothing")
    requeue.set_defaults(func=_requeue)
    # `demo` parses its own options (undecat.demo.main); listed here for --help.
    commands.add_parser("demo", help="the whole pipeline on embedded defaults (no credentials)")
    run = commands.add_parser("run", help="run one job of a host")
    run.add_argument("host")
    run.add_argument("job")
    run.add_argument("rest", nargs=argparse.REMAINDER)
    run.set_defaults(func=_run)
    given = list(sys.argv[1:] if argv is None else argv)
    if given[:1] == ["demo"]:
        from undecat.demo import main as demo_main  # noqa: PLC0415

        _setup_logging()
        return demo_main(given[1:])
    args = parser.parse_args(given)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        _fail(str(exc))
        return EXIT_USAGE
    except UndecatError as exc:
        _fail(str(exc))
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
