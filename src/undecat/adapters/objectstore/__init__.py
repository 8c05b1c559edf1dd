"""Object storage adapters: the S3 bucket (boto3), its filesystem stand-in, user media.

:func:`open_object_store` chooses from its settings' root: ``http(s)://`` ->
:class:`S3ObjectStore`; ``file:///path`` -> :class:`FileObjectStore` in ``/path/{bucket}``.
(``undecat.settings.object_store_settings`` reads them from ``S3_ENDPOINT``,
``OBJECT_STORE_DIR`` and ``S3_BUCKET``; no host silently keeps objects of its own.)
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

import attrs

from undecat.adapters.objectstore.client import S3Settings
from undecat.adapters.objectstore.filesystem import FileObjectStore
from undecat.adapters.objectstore.s3 import S3ObjectStore
from undecat.adapters.objectstore.user_media import UserMediaStore
from undecat.errors import ConfigError

__all__ = [
    "FileObjectStore",
    "ObjectStoreSettings",
    "S3ObjectStore",
    "S3Settings",
    "UserMediaStore",
    "open_object_store",
]


@attrs.frozen
class ObjectStoreSettings:
    """Where the catalog bucket is: an ``http(s)://`` endpoint (with ``s3``) or a folder."""

    root: str
    bucket: str
    public_base_url: str
    s3: S3Settings | None = None


def open_object_store(settings: ObjectStoreSettings) -> S3ObjectStore | FileObjectStore:
    """Build the catalog bucket's store from ``settings``."""
    if settings.root.startswith("file://"):
        parts = urlsplit(settings.root)
        if parts.netloc not in ("", "localhost"):
            raise ConfigError("S3_ENDPOINT file:// URLs must be local: file:///path")
        root = Path(url2pathname(parts.path)) / settings.bucket
        return FileObjectStore(root, public_base_url=settings.public_base_url)
    if settings.s3 is None:
        raise ConfigError(f"no S3 credentials for the endpoint {settings.root}")
    return S3ObjectStore(settings.s3, settings.bucket, public_base_url=settings.public_base_url)
