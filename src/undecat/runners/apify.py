"""Runner of the apify host: ``undecat-apify JOB``.

Also ``python -m undecat.runners.apify JOB``.
"""

from __future__ import annotations

import sys

from undecat.cli import run_host

__all__ = ["main"]


def main() -> int:
    """Run the job named on the command line; return the exit code."""
    return run_host("apify", sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
