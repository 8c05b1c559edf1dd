#!/usr/bin/env python3
"""Alias of ``undecat-photo-downloader JOB``, kept for old command lines.

Deploy the installed entry point instead: it runs the installed release, never this tree.
"""

import sys

from undecat.runners.photo_downloader import main

if __name__ == "__main__":
    sys.exit(main())
