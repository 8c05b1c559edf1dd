#!/usr/bin/env python3
"""Runner of the ximilar_sync host: ``python runners/ximilar_sync.py JOB``.

The jobs are listed in ``undecat.bootstrap.HOST_JOBS``.
"""

import sys

from undecat.cli import run_host

if __name__ == "__main__":
    sys.exit(run_host("ximilar_sync", sys.argv[1:]))
