"""Runner of the collage host: ``undecat-collage JOB``.

Also ``python -m undecat.runners.collage JOB``.
"""

from __future__ import annotations

import sys

from undecat.cli import run_host

__all__ = ["main"]


def main() -> int:
    """Run the job named on the command line; return the exit code."""
    return run_host("collage", sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
