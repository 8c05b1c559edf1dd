#!/usr/bin/env python3
"""Runner of the collage host: ``python runners/collage.py JOB``.

The jobs are listed in ``undecat.bootstrap.HOST_JOBS``.
"""

import sys

from undecat.cli import run_host

if __name__ == "__main__":
    sys.exit(run_host("collage", sys.argv[1:]))
