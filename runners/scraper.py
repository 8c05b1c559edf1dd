#!/usr/bin/env python3
"""Runner of the scraper host: ``python runners/scraper.py JOB``.

The jobs are listed in ``undecat.bootstrap.HOST_JOBS``.
"""

import sys

from undecat.cli import run_host

if __name__ == "__main__":
    sys.exit(run_host("scraper", sys.argv[1:]))
