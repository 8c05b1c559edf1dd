"""The per-host runners as modules of the installed package.

Each host has a console script (``undecat-photo-downloader JOB``, ...) and a module
(``python -m undecat.runners.photo_downloader JOB``); both run the installed release, so a
host never mixes two versions. ``runners/*.py`` in the source tree are aliases of these.
"""

from __future__ import annotations

__all__ = ["HOSTS"]

#: The hosts that have a runner (the keys of ``undecat.bootstrap.HOST_JOBS``).
HOSTS = ("apify", "photo_downloader", "collage", "ximilar_sync", "scraper")
