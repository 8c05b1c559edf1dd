"""Object storage adapters: the S3 bucket (boto3), its filesystem stand-in, user media.

:func:`open_object_store` chooses from the configuration: ``S3_ENDPOINT`` ``http(s)://``
-> :class:`S3ObjectStore`; ``file:///path`` -> :class:`FileObjectStore` in
``/path/{S3_BUCKET}``; unset -> ``OBJECT_STORE_DIR/{S3_BUCKET}`` when that is set, else
ConfigError (no host silently keeps objects of its own).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

from undecat.adapters.objectstore.client import S3Settings
from undecat.adapters.objectstore.filesystem import FileObjectStore
from undecat.adapters.objectstore.s3 import S3ObjectStore
from undecat.adapters.objectstore.user_media import UserMediaStore
from undecat.config import Config
from undecat.errors import ConfigError

__all__ = [
    "FileObjectStore",
    "S3ObjectStore",
    "S3Settings",
    "UserMediaStore",
    "open_object_store",
    "open_user_media",
    "s3_settings",
]


def s3_settings(config: Config) -> S3Settings:
    """Return how to reach ``S3_ENDPOINT``; ConfigError when it or a key is missing."""
    if config.s3_endpoint is None or config.s3_endpoint.startswith("file://"):
        raise ConfigError("S3_ENDPOINT must be an http(s):// S3 endpoint here")
    if config.s3_access_key is None:
        raise ConfigError("S3_ACCESS_KEY is not set (needed with an http(s) S3_ENDPOINT)")
    if config.s3_secret_key is None:
        raise ConfigError("S3_SECRET_KEY is not set (needed with an http(s) S3_ENDPOINT)")
    return S3Settings(
        config.s3_endpoint,
        config.s3_access_key,
        config.s3_secret_key,
        region=config.s3_region,
        # One connection per concurrent upload, so workers never queue for the pool.
        max_pool_connections=max(10, config.concurrent_downloads),
    )


def open_object_store(config: Config) -> S3ObjectStore | FileObjectStore:
    """Build the catalog bucket's store (``S3_BUCKET``) from the configuration."""
    endpoint = config.object_store_root()  # ConfigError when neither store is configured
    if endpoint.startswith("file://"):
        parts = urlsplit(endpoint)
        if parts.netloc not in ("", "localhost"):
            raise ConfigError("S3_ENDPOINT file:// URLs must be local: file:///path")
        root = Path(url2pathname(parts.path)) / config.s3_bucket
        return FileObjectStore(root, public_base_url=config.public_base_url())
    return S3ObjectStore(
        s3_settings(config), config.s3_bucket, public_base_url=config.public_base_url()
    )


def open_user_media(config: Config) -> UserMediaStore:
    """Build the private user media store (``S3_USER_MEDIA_BUCKET``) on ``S3_ENDPOINT``."""
    return UserMediaStore(s3_settings(config), config.s3_user_media_bucket)
