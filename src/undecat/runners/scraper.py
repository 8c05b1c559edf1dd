"""Runner of the scraper host: ``undecat-scraper JOB``.

Also ``python -m undecat.runners.scraper JOB``.
"""

from __future__ import annotations

import sys

from undecat.cli import run_host

__all__ = ["main"]


def main() -> int:
    """Run the job named on the command line; return the exit code."""
    return run_host("scraper", sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
