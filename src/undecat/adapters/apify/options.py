"""The extra command-line options of the ``apify_<brand>`` jobs.

    runners/apify.py apify_zara [--from-file EXPORT.json|EXPORT.jsonl] [--no-delist]

``--from-file`` reads a dataset export instead of calling Apify (offline runs, backfills,
the demo); ``--no-delist`` stores the items but delists nothing (a partial backfill).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import attrs

from undecat.errors import ConfigError

__all__ = ["CollectOptions"]


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises ConfigError (exit code 2 via the CLI) instead of exiting."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{message}\n{self.format_usage().strip()}")


@attrs.frozen
class CollectOptions:
    """What the extra arguments of a collect job ask for."""

    from_file: Path | None = None
    delist: bool = True

    @classmethod
    def parse(
        cls, argv: Sequence[str], *, prog: str = "runners/apify.py apify_<brand>"
    ) -> CollectOptions:
        """Parse ``argv``; ConfigError with the usage line when it is malformed."""
        parser = _Parser(prog=prog, add_help=False, exit_on_error=False)
        parser.add_argument("--from-file", type=Path, metavar="PATH")
        parser.add_argument("--no-delist", action="store_true")
        try:
            args = parser.parse_args(list(argv))
        except argparse.ArgumentError as exc:
            parser.error(str(exc))
        return cls(from_file=args.from_file, delist=not args.no_delist)
