#!/usr/bin/env python3
"""Runner of the photo_downloader host: ``python runners/photo_downloader.py JOB``.

The jobs are listed in ``undecat.bootstrap.HOST_JOBS``.
"""

import sys

from undecat.cli import run_host

if __name__ == "__main__":
    sys.exit(run_host("photo_downloader", sys.argv[1:]))
