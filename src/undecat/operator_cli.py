"""The operator's everyday commands (docs/runbook.md, "Everyday commands").

    undecat runs [--job J] [--since 24h] [--failed]     runs with their error text
    undecat show BRAND EXTERNAL_ID                      one product across every stage
    undecat pilot --brand B (--add IDS | --sample PERCENT | --remove IDS)
    undecat notify-failure UNIT                         what the OnFailure= unit runs

They need ``STAGING_DB_URL``; ``runs`` and ``show`` only read. ``pilot`` writes
``index_scope``, which no host role may: run it with the schema owner's URL.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import socket
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from undecat.config import Config
from undecat.domain.keys import collage_key, original_key
from undecat.errors import ConfigError, UndecatError
from undecat.text import one_line

if TYPE_CHECKING:
    from undecat.bootstrap import Resources

__all__ = ["add_operator_commands", "parse_since"]

_log = logging.getLogger("undecat.operator")
_SINCE = re.compile(r"^(?P<n>\d+)(?P<unit>[smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str) -> timedelta:
    """Parse ``30m``, ``24h``, ``7d``, ``2w`` into a duration; ConfigError otherwise."""
    match = _SINCE.match(text.strip())
    if not match:
        raise ConfigError(f"--since must be a number and a unit (s, m, h, d, w), got {text!r}")
    return timedelta(**{_UNITS[match["unit"]]: int(match["n"])})


def _ids(text: str) -> list[str]:
    ids = [part.strip() for part in text.split(",") if part.strip()]
    if not ids:
        raise ConfigError("list at least one external id, comma-separated")
    return ids


def add_operator_commands(commands: Any) -> None:
    """Register ``runs``, ``show``, ``pilot`` and ``notify-failure`` on the ``undecat`` parser."""
    runs = commands.add_parser("runs", help="runs with their error text (scraper_logs)")
    runs.add_argument("--job", help="only this job (e.g. download_pending, apify_zara)")
    runs.add_argument("--since", default="24h", help="how far back: 30m, 24h, 7d (default 24h)")
    runs.add_argument("--failed", action="store_true", help="only runs that did not succeed")
    runs.set_defaults(func=_runs)

    show = commands.add_parser("show", help="one product across every stage")
    show.add_argument("brand")
    show.add_argument("external_id")
    show.set_defaults(func=_show)

    pilot = commands.add_parser("pilot", help="choose the products indexed in Ximilar")
    pilot.add_argument("--brand", required=True)
    choice = pilot.add_mutually_exclusive_group(required=True)
    choice.add_argument("--add", metavar="IDS", help="comma-separated external ids to add")
    choice.add_argument("--remove", metavar="IDS", help="comma-separated external ids to drop")
    choice.add_argument(
        "--sample", metavar="PERCENT", type=float, help="add a stable share of the brand"
    )
    pilot.set_defaults(func=_pilot)

    notify = commands.add_parser(
        "notify-failure", help="report a failed unit (run by undecat-failure@.service)"
    )
    notify.add_argument("unit")
    notify.set_defaults(func=_notify_failure)


def _resources(config: Config) -> Resources:
    """The adapters of an operator command; ConfigError when STAGING_DB_URL is not set."""
    from undecat.bootstrap import open_resources  # noqa: PLC0415

    if config.staging_db_url is None:
        raise ConfigError("STAGING_DB_URL is not set")
    return open_resources(config)


def _runs(args: argparse.Namespace) -> int:
    config = Config.from_env()
    since = datetime.now(UTC) - parse_since(args.since)
    with _resources(config) as resources:
        rows = resources.operator_queries().runs(job=args.job, since=since, failed_only=args.failed)
    if not rows:
        print(f"no runs since {since:%Y-%m-%d %H:%M} UTC")  # noqa: T201
    for row in rows:
        took = "" if row["duration_seconds"] is None else f" {row['duration_seconds']}s"
        print(  # noqa: T201
            f"{row['started_at']:%Y-%m-%d %H:%M} {row['scraper_name']:32} {row['status']:8}"
            f"{took} fetched={row['records_fetched']} new={row['records_new']}"
            f" updated={row['records_updated']} errors={row['records_errors']}"
        )
        if row["error_message"]:
            print(f"    error: {one_line(row['error_message'], 500)}")  # noqa: T201
    return 0


def _show(args: argparse.Namespace) -> int:
    config = Config.from_env()
    with _resources(config) as resources:
        row = resources.operator_queries().product(args.brand, args.external_id)
    if row is None:
        print(f"no product {args.brand}/{args.external_id} in staging")  # noqa: T201
        return 1
    print(f"staging raw_products {args.brand}/{args.external_id}:")  # noqa: T201
    for column, value in row.items():  # in the order of the query (every stage's columns)
        print(f"  {column:22} {_shown(value)}")  # noqa: T201
    photos = row["image_urls"] if isinstance(row["image_urls"], list) else []
    keys = [original_key(args.brand, args.external_id, n) for n in range(1, len(photos) + 1)]
    if row["collage_url"]:
        keys.append(collage_key(args.brand, args.external_id))
    print(f"  {'object keys':22} {', '.join(keys) or '-'}")  # noqa: T201
    print(_production_row(config, args.brand, args.external_id))  # noqa: T201
    return 0


def _shown(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M:%S %Z}"
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _production_row(config: Config, brand: str, external_id: str) -> str:
    """The production row as text, or why there is none (no URL, no schema yet, no row)."""
    from undecat.bootstrap import open_resources  # noqa: PLC0415

    if config.production_db_url is None:
        return "production: PRODUCTION_DB_URL is not set"
    try:
        with open_resources(config) as resources:
            production = resources.production_lookup()
            if not production.has_catalog():
                return "production: no catalog.products table yet (run undecat migrate)"
            found = production.product(brand, external_id)
    except UndecatError as exc:
        return f"production: cannot read ({exc})"
    if found is None:
        return "production: no row"
    lines = ["production catalog.products:"]
    lines += [f"  {column:22} {_shown(value)}" for column, value in found.items()]
    return "\n".join(lines)


def _pilot(args: argparse.Namespace) -> int:
    config = Config.from_env()
    if args.brand not in config.brands:
        raise ConfigError(f"unknown brand {args.brand!r}; BRANDS is {','.join(config.brands)}")
    if args.sample is not None and not 0 < args.sample <= 100:
        raise ConfigError(f"--sample must be a percentage above 0 and at most 100: {args.sample}")
    with _resources(config) as resources:
        queries = resources.operator_queries()
        if args.add:
            changed, what = queries.set_scope(args.brand, _ids(args.add), "pilot"), "added to"
        elif args.remove:
            changed, what = queries.set_scope(args.brand, _ids(args.remove), "off"), "removed from"
        else:
            changed, what = queries.sample_pilot(args.brand, args.sample), "sampled into"
    print(f"{args.brand}: {changed} product(s) {what} the Ximilar pilot")  # noqa: T201
    return 0


def _notify_failure(args: argparse.Namespace) -> int:
    from undecat.bootstrap import post_alert  # noqa: PLC0415

    config = Config.from_env()
    host = socket.gethostname()
    text = f"{args.unit} failed on {host}: journalctl -u {args.unit} -n 50"
    _log.error("%s", text)
    if config.failure_webhook_url is not None:
        post_alert(config.failure_webhook_url, {"text": text, "unit": args.unit, "host": host})
    return 0
