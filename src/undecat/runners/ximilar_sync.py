"""Runner of the ximilar_sync host: ``undecat-ximilar-sync JOB``.

Also ``python -m undecat.runners.ximilar_sync JOB``.
"""

from __future__ import annotations

import sys

from undecat.cli import run_host

__all__ = ["main"]


def main() -> int:
    """Run the job named on the command line; return the exit code."""
    return run_host("ximilar_sync", sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
