"""undecat: the catalog pipeline of UNDE.

Import what you need from here; everything else is internal::

    from undecat import Config, bootstrap
    with bootstrap(Config.from_env()) as jobs:
        result = jobs.job("photo_downloader", "download_pending").run()
"""

from undecat.bootstrap import HOST_JOBS, Jobs, bootstrap
from undecat.config import Config
from undecat.domain.models import BRANDS, Product, ProductDraft, RunResult
from undecat.domain.stages import Stage
from undecat.domain.status import ImageStatus, RunStatus, SyncStatus, XimilarStatus
from undecat.errors import (
    ConfigError,
    DatabaseUnavailableError,
    MigrationError,
    ObjectStoreUnavailableError,
    OutageError,
    PhotoError,
    ProductError,
    ProxyError,
    RemoteServiceError,
    UndecatError,
)

__all__ = [
    "BRANDS",
    "HOST_JOBS",
    "Config",
    "ConfigError",
    "DatabaseUnavailableError",
    "ImageStatus",
    "Jobs",
    "MigrationError",
    "ObjectStoreUnavailableError",
    "OutageError",
    "PhotoError",
    "Product",
    "ProductDraft",
    "ProductError",
    "ProxyError",
    "RemoteServiceError",
    "RunResult",
    "RunStatus",
    "Stage",
    "SyncStatus",
    "UndecatError",
    "XimilarStatus",
    "bootstrap",
]
