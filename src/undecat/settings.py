"""Each adapter's settings, read from the configuration: the composition side of the adapters.

An adapter takes a small frozen value (:class:`FetchSettings`, :class:`ObjectStoreSettings`,
:class:`S3Settings`, :class:`ZaraSettings`) and never the whole :class:`~undecat.config.Config`,
so it can be understood and tested without the configuration module. The functions here are
the one place that maps the environment's variables onto those values; ``bootstrap``, the
health checks and the user media library call them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from undecat.config import Config
from undecat.errors import ConfigError

if TYPE_CHECKING:  # the adapters' modules load their I/O libraries: imported when called
    from undecat.adapters.http import FetchSettings
    from undecat.adapters.objectstore import ObjectStoreSettings, S3Settings
    from undecat.adapters.zara import ZaraSettings

__all__ = ["fetch_settings", "object_store_settings", "s3_settings", "zara_settings"]


def fetch_settings(config: Config) -> FetchSettings:
    """The photo fetcher's settings (``PROXY_URL``, ``ALLOWED_PHOTO_HOSTS``, timeouts, pacing)."""
    from undecat.adapters.http import FetchSettings  # noqa: PLC0415

    return FetchSettings(
        proxy_url=config.proxy_url,
        allowed_hosts=config.allowed_photo_hosts,
        http_hosts=config.allowed_photo_http_hosts,
        ca_bundle=config.proxy_ca_bundle,
        timeout=config.download_timeout,
        max_bytes=config.max_photo_bytes,
        backoff=config.backoff_schedule,
        concurrency=config.concurrent_downloads,
        delay_min=config.download_delay_min,
        delay_max=config.download_delay_max,
    )


def s3_settings(config: Config) -> S3Settings:
    """Return how to reach ``S3_ENDPOINT``; ConfigError when it or a key is missing."""
    from undecat.adapters.objectstore import S3Settings  # noqa: PLC0415

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


def object_store_settings(config: Config) -> ObjectStoreSettings:
    """The catalog bucket's store: ``S3_ENDPOINT`` (or ``OBJECT_STORE_DIR``) and ``S3_BUCKET``.

    ConfigError when neither store is configured, or an http(s) endpoint lacks a key.
    """
    from undecat.adapters.objectstore import ObjectStoreSettings  # noqa: PLC0415

    root = config.object_store_root()
    return ObjectStoreSettings(
        root=root,
        bucket=config.s3_bucket,
        public_base_url=config.public_base_url(),
        s3=None if root.startswith("file://") else s3_settings(config),
    )


def zara_settings(config: Config) -> ZaraSettings:
    """The Zara client's settings; ConfigError naming ``ZARA_USER_AGENT`` when it is unset."""
    from undecat.adapters.zara import ZaraSettings  # noqa: PLC0415

    if not config.zara_user_agent:
        raise ConfigError("ZARA_USER_AGENT is not set (the user agent of Zara's API)")
    return ZaraSettings(
        user_agent=config.zara_user_agent,
        base_url=config.zara_base_url,
        country=config.zara_country,
        lang=config.zara_lang,
        lat=config.zara_store_lat,
        lng=config.zara_store_lng,
        radius=config.zara_store_radius,
        proxy_url=config.proxy_url,
        ca_bundle=config.proxy_ca_bundle,
        timeout=config.download_timeout,
        backoff=config.backoff_schedule,
        concurrency=config.availability_concurrency,
        delay_min=config.availability_delay_min,
        delay_max=config.availability_delay_max,
    )
