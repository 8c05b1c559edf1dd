"""The ``undecat`` command and the per-host runners.

    undecat migrate --database staging|production [--url URL]
    undecat run HOST JOB             (what runners/HOST.py JOB does)
    undecat status [--html FILE]     (the funnel per brand, work, runs, errors; a web page)
    undecat health [--host H] [--json]  (is each host able to run its jobs; exit 0/1/2)
    runners/HOST.py health [--json]  (the same, for that host)
    undecat requeue --stage STAGE [--brand B] [--reason TEXT] [--dry-run]
    undecat demo                     (the whole pipeline on embedded defaults)
    undecat runs | show | pilot | notify-failure   (operator commands, docs/runbook.md)

Exit codes: 0 the job did its work; 1 it failed (logged in ``scraper_logs``);
2 bad configuration or usage (one line naming the problem); 128 + the signal's number when
a job was stopped by SIGTERM / SIGINT (143 / 130; logged ``interrupted``). ``health`` exits
0 healthy, 1 degraded (a job late), 2 down (a dependency unreachable).

Logs go to stdout: JSON lines when it is not a terminal (journald), readable lines when it
is, secrets scrubbed either way.

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
from undecat.errors import (
    ConfigError,
    CredentialsError,
    DatabaseConfigurationError,
    UndecatError,
)
from undecat.jobs.runlog import StopToken
from undecat.redact import RedactingFilter, Secret, redact_text

__all__ = ["main", "run_host"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_log = logging.getLogger("undecat")


def _setup_logging(config: Config | None = None) -> None:
    from undecat.bootstrap import setup_logging  # noqa: PLC0415
    from undecat.redact import secret_values  # noqa: PLC0415

    secrets = secret_values(config) if config is not None else ()
    # Every record is redacted on its way out, whoever logged it (issue 18 item 9): the
    # filter rewrites the record itself, the formatter scrubs what it renders.
    setup_logging(secrets).addFilter(RedactingFilter(secrets))


def _fail(message: str, config: Config | None = None) -> None:
    from undecat.redact import secret_values  # noqa: PLC0415

    secrets = secret_values(config) if config is not None else ()
    print(f"undecat: {redact_text(message, secrets)}", file=sys.stderr)  # noqa: T201


#: Hosts whose jobs take options of their own (the rest refuse any argument after JOB).
_HOSTS_WITH_OPTIONS = frozenset({"apify"})


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
    """Run one job of ``host`` (the runners' entry point); return the exit code.

    The exit code follows :func:`undecat.domain.outcome.exit_code`: 0 the run did its work,
    1 it failed (every product failing counts), 2 configuration (incl. a refused password).
    """
    from undecat.bootstrap import bootstrap, host_jobs  # noqa: PLC0415
    from undecat.domain.outcome import exit_code  # noqa: PLC0415

    if list(argv)[:1] == ["health"]:
        return _health_main([host], list(argv)[1:], prog=f"runners/{host}.py health")
    parser = argparse.ArgumentParser(
        prog=f"undecat-{host.replace('_', '-')}",
        description=f"Run a job of the {host} host (or `health`).",
    )
    parser.add_argument("--version", action="version", version=_version())
    parser.add_argument("job")
    args, extra = parser.parse_known_args(list(argv))
    _setup_logging()
    config: Config | None = None
    stop = StopToken()
    try:
        config = Config.from_env()
        _setup_logging(config)
        _check_command(host_jobs(config.brands), host, args.job, extra)
        with (
            _stop_on_signals(stop, config.stop_grace_seconds) as received,
            bootstrap(config, argv=tuple(extra), stop=stop) as jobs,
        ):
            result = jobs.job(host, args.job).run()
    except (ConfigError, CredentialsError, DatabaseConfigurationError) as exc:
        _fail(str(exc), config)
        return EXIT_USAGE
    except UndecatError as exc:
        _fail(f"{host} {args.job}: {exc}", config)
        return EXIT_FAILED
    if result.status == RunStatus.INTERRUPTED:
        _fail(f"{host} {args.job} interrupted: {result.error_message}", config)
        return 128 + (received[0] if received else signal.SIGTERM)
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
    from undecat.bootstrap import migrate  # noqa: PLC0415

    config = Config.from_env()
    url = (
        Secret(args.url)
        if args.url
        else (config.staging_db_url if args.database == "staging" else config.production_db_url)
    )
    if url is None:
        variable = "STAGING_DB_URL" if args.database == "staging" else "PRODUCTION_DB_URL"
        raise ConfigError(f"{variable} is not set (or pass --url)")
    applied = migrate(
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


def _status(args: argparse.Namespace) -> int:
    from undecat.bootstrap import open_resources  # noqa: PLC0415
    from undecat.domain.stages import Stage  # noqa: PLC0415
    from undecat.ops.render import render_html, render_text  # noqa: PLC0415

    config = Config.from_env()
    if config.staging_db_url is None:
        raise ConfigError("STAGING_DB_URL is not set")
    with open_resources(config) as resources:
        report = resources.ops_report().report()
        queues = [resources.queue_admin(stage).counts() for stage in Stage]
        print(render_text(report), end="")  # noqa: T201
        # Per stage, as the queue itself counts its rows (the numbers `undecat requeue` acts on).
        print(  # noqa: T201
            f"\n{'stage':9} {'claimable':>9} {'leased':>7} {'stale':>6} {'failed':>7}"
            f" {'exhausted':>9} {'waiting':>8}"
        )
        for q in queues:
            print(  # noqa: T201
                f"{q.stage.value:9} {q.claimable:9d} {q.leased:7d} {q.stale:6d} {q.failed:7d}"
                f" {q.exhausted:9d} {q.waiting:8d}"
            )
        if args.html:
            report = resources.with_thumbnails(report)
            path = Path(args.html)
            try:
                path.write_text(render_html(report), encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from exc
            print(f"\nreport written to {path}")  # noqa: T201
    return EXIT_OK


def _health_main(hosts: Sequence[str], argv: list[str], *, prog: str) -> int:
    """Run the health checks of ``hosts``; print one line per check (or JSON); exit 0/1/2."""
    import json  # noqa: PLC0415

    from undecat.domain.health import exit_code  # noqa: PLC0415
    from undecat.ops.health import check_host  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog=prog, description="Check that the host can work.")
    parser.add_argument("--json", action="store_true", help="one JSON document")
    args = parser.parse_args(argv)
    _setup_logging()
    try:
        config = Config.from_env()
    except ConfigError as exc:
        _fail(str(exc))
        return EXIT_USAGE
    _setup_logging(config)
    results = {host: check_host(config, host) for host in hosts}
    code = exit_code(check for checks in results.values() for check in checks)
    if args.json:
        document = {
            "status": ("healthy", "degraded", "down")[code],
            "exit_code": code,
            "hosts": {host: [c.as_json() for c in checks] for host, checks in results.items()},
        }
        print(json.dumps(document, indent=2))  # noqa: T201
        return code
    for host, checks in results.items():
        for check in checks:
            print(f"{check.severity.label:8} {host:16} {check.name:28} {check.detail}")  # noqa: T201
    print(("healthy", "degraded", "down")[code])  # noqa: T201
    return code


def _health(args: argparse.Namespace) -> int:
    from undecat.bootstrap import HOST_JOBS  # noqa: PLC0415

    hosts = [_host_name(h) for h in args.host] if args.host else list(HOST_JOBS)
    unknown = [h for h in hosts if h not in HOST_JOBS]
    if unknown:
        raise ConfigError(f"unknown host {unknown[0]!r}; expected one of {', '.join(HOST_JOBS)}")
    return _health_main(hosts, ["--json"] if args.json else [], prog="undecat health")


def _requeue(args: argparse.Namespace) -> int:
    from undecat.bootstrap import open_resources  # noqa: PLC0415
    from undecat.domain.stages import Stage  # noqa: PLC0415

    config = Config.from_env()
    if config.staging_db_url is None:
        raise ConfigError("STAGING_DB_URL is not set")
    stage = Stage(args.stage)
    with open_resources(config) as resources:
        queue = resources.queue_admin(stage)
        count = queue.requeue(brand=args.brand, reason=args.reason, dry_run=args.dry_run)
    verb = "would requeue" if args.dry_run else "requeued"
    print(f"{stage.value}: {verb} {count} product(s)")  # noqa: T201
    return EXIT_OK


def _host_name(name: str) -> str:
    """A host as its runner spells it: ``photo-downloader`` (its units) is ``photo_downloader``."""
    return name.replace("-", "_")


def _run(args: argparse.Namespace) -> int:
    return run_host(_host_name(args.host), [args.job, *args.rest])


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
    status = commands.add_parser(
        "status", help="the funnel per brand, leased work, last runs, common errors"
    )
    status.add_argument("--html", metavar="FILE", help="also write the report as a web page")
    status.set_defaults(func=_status)
    health = commands.add_parser("health", help="check the hosts' dependencies and jobs")
    health.add_argument(
        "--host", action="append", help="check only this host (repeatable; default: all)"
    )
    health.add_argument("--json", action="store_true", help="one JSON document")
    health.set_defaults(func=_health)
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
    except (ConfigError, CredentialsError, DatabaseConfigurationError) as exc:
        _fail(str(exc))
        return EXIT_USAGE
    except UndecatError as exc:
        _fail(str(exc))
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
