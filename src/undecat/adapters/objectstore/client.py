"""The boto3 S3 client every S3 adapter uses: path-style, bounded, never through a proxy."""

from __future__ import annotations

import functools
import threading
from typing import TYPE_CHECKING

import boto3
import botocore.config
import botocore.exceptions

from undecat.errors import ConfigError
from undecat.redact import Secret, redact_url

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["S3Settings", "make_client"]


class S3Settings:
    """How to reach an S3-compatible endpoint (credentials held as secrets)."""

    def __init__(
        self,
        endpoint: str,
        access_key: Secret,
        secret_key: Secret,
        *,
        region: str = "us-east-1",
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        max_attempts: int = 3,
        max_pool_connections: int = 10,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = region
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_attempts = max_attempts
        self.max_pool_connections = max_pool_connections

    def __repr__(self) -> str:
        return f"S3Settings(endpoint={redact_url(self.endpoint)!r}, region={self.region!r})"


# Building a client loads botocore's service model and endpoint rules (~0.1 s); one session
# keeps them loaded for every client of the process. Sessions are not thread-safe, hence
# the lock around client creation (the clients themselves are).
_SESSION_LOCK = threading.Lock()


@functools.cache
def _session() -> boto3.session.Session:
    # Credentials and endpoint are always passed explicitly; the session only caches models.
    return boto3.session.Session()


def make_client(settings: S3Settings) -> S3Client:
    """Build a thread-safe S3 client for ``settings``.

    * Path-style addressing (``endpoint/bucket/key``): works on SeaweedFS, MinIO and Hetzner
      without wildcard DNS for ``bucket.endpoint``.
    * ``proxies={}``: botocore would otherwise take ``HTTP(S)_PROXY`` from the environment,
      and the photo downloader's hosts set a residential proxy that S3 uploads must never
      go through (source document: "Upload в S3 идёт напрямую").
    * Timeouts and a bounded number of attempts ("standard" retry mode: throttling and 5xx
      are retried with jittered back-off, then the error surfaces as an outage).
    * Checksums only where the API requires them: newer botocore adds CRC32 trailers by
      default, which several S3-compatible stores reject.
    """
    config = botocore.config.Config(
        s3={"addressing_style": "path"},
        proxies={},
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        # total_max_attempts counts the first try too (botocore's max_attempts would not).
        retries={"total_max_attempts": settings.max_attempts, "mode": "standard"},
        max_pool_connections=settings.max_pool_connections,
        signature_version="s3v4",
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    try:
        with _SESSION_LOCK:
            return _session().client(
                "s3",
                endpoint_url=settings.endpoint,
                aws_access_key_id=settings.access_key.reveal(),
                aws_secret_access_key=settings.secret_key.reveal(),
                region_name=settings.region,
                config=config,
            )
    except (botocore.exceptions.BotoCoreError, ValueError) as exc:
        raise ConfigError(
            f"S3_ENDPOINT {redact_url(settings.endpoint)!r} cannot be used: {type(exc).__name__}"
        ) from exc
