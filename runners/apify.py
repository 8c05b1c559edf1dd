#!/usr/bin/env python3
"""Alias of ``undecat-apify JOB`` (``undecat.runners.apify``), for old command lines.

Deploy the installed entry point instead: it runs the installed release, never this tree.
"""

import sys

from undecat.runners.apify import main

if __name__ == "__main__":
    sys.exit(main())
