#!/usr/bin/env python3
"""Alias of ``undecat-ximilar-sync JOB`` (``undecat.runners.ximilar_sync``), for old command lines.

Deploy the installed entry point instead: it runs the installed release, never this tree.
"""

import sys

from undecat.runners.ximilar_sync import main

if __name__ == "__main__":
    sys.exit(main())
