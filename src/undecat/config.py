"""Configuration from the environment, with the source document's variable names.

:meth:`Config.from_env` reads every variable once, checks it, and raises one
:class:`~undecat.errors.ConfigError` naming the first variable that is malformed. Defaults
point at localhost or an embedded service, never at a production host. Secrets are held as
:class:`~undecat.redact.Secret`, so ``repr(config)`` never shows a password, token or key.
The full table of variables is in ``docs/configuration.md``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import attrs

from undecat.domain.models import BRANDS
from undecat.errors import ConfigError
from undecat.redact import Secret, redact_url

__all__ = ["DEFAULT_ALLOWED_PHOTO_HOSTS", "DEFAULT_APIFY_TASKS", "Config"]

#: Brand -> Apify task id known from the source document; the others come from
#: ``APIFY_TASK_<BRAND>``.
DEFAULT_APIFY_TASKS: Mapping[str, str] = {"zara": "z1psVOTyIKFdU5N9n"}

#: The image CDNs of the six brands.
DEFAULT_ALLOWED_PHOTO_HOSTS: tuple[str, ...] = (
    "static.zara.net",
    "static.bershka.net",
    "static.pullandbear.net",
    "static.e-stradivarius.net",
    "static.stradivarius.net",
    "static.massimodutti.net",
    "static.oysho.net",
)

_T = TypeVar("_T")


def _show_url(secret: Secret | None) -> str:
    return "None" if secret is None else repr(redact_url(secret.reveal()))


@attrs.frozen
class Config:
    """Every setting of every host, read from the environment once."""

    # Databases (URLs carry passwords: held as secrets, shown redacted).
    staging_db_url: Secret | None = attrs.field(default=None, repr=_show_url)
    production_db_url: Secret | None = attrs.field(default=None, repr=_show_url)

    # Photo downloader.
    proxy_url: Secret | None = attrs.field(default=None, repr=_show_url)
    proxy_ca_bundle: Path | None = None
    download_timeout: float = 30.0
    product_timeout: float = 120.0
    max_retries: int = 3
    batch_size: int = 200
    concurrent_downloads: int = 10
    download_delay_min: float = 0.5
    download_delay_max: float = 2.0
    backoff_schedule: tuple[float, ...] = (5.0, 15.0, 45.0)
    allowed_photo_hosts: tuple[str, ...] = DEFAULT_ALLOWED_PHOTO_HOSTS
    max_photo_bytes: int = 25 * 1024 * 1024
    max_photo_pixels: int = 40_000_000
    photos_per_product: int = 5

    # Object storage. ``s3_endpoint`` None means the embedded filesystem store in DATA_DIR.
    s3_endpoint: str | None = None
    s3_access_key: Secret | None = None
    s3_secret_key: Secret | None = None
    s3_bucket: str = "unde-images"
    s3_public_base_url: str | None = None
    s3_region: str = "us-east-1"
    s3_user_media_bucket: str = "unde-user-media"

    # Apify.
    apify_token: Secret | None = None
    apify_api_url: str = "https://api.apify.com"
    apify_tasks: Mapping[str, str] = attrs.field(factory=lambda: dict(DEFAULT_APIFY_TASKS))
    apify_wait_seconds: float = 3 * 3600.0

    # Ximilar.
    ximilar_api_token: Secret | None = None
    ximilar_collection_id: Secret | None = None
    ximilar_api_url: str = "https://api.ximilar.com"
    ximilar_api_prefix: str = "similarity/fashion-new/v2"
    ximilar_rate_limit: float = 10.0

    # Collage.
    collage_quality: int = 95

    # Availability (scraper host).
    zara_user_agent: str | None = None
    dubai_zara_stores: tuple[int, ...] = ()
    zara_base_url: str = "https://www.zara.com"
    zara_country: str = "ae"
    zara_lang: str = "en"
    zara_store_lat: float = 25.2048
    zara_store_lng: float = 55.2708
    zara_store_radius: int = 100
    availability_run_seconds: float = 3000.0
    availability_concurrency: int = 1
    availability_delay_min: float = 5.0
    availability_delay_max: float = 8.0
    availability_max_blocks: int = 3
    availability_block_backoff: float = 30.0
    availability_retention_days: int = 90

    # Runtime.
    data_dir: Path = Path("data")
    lease_seconds: float = 3600.0

    def public_base_url(self) -> str:
        """Return the base URL under which stored objects are publicly readable."""
        if self.s3_public_base_url:
            return self.s3_public_base_url.rstrip("/")
        if self.s3_endpoint is None:
            return (self.data_dir / "objects" / self.s3_bucket).resolve().as_uri()
        if self.s3_endpoint.startswith("file://"):
            return f"{self.s3_endpoint.rstrip('/')}/{self.s3_bucket}"
        return f"{self.s3_endpoint.rstrip('/')}/{self.s3_bucket}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        """Build the configuration from ``environ`` (default: ``os.environ``)."""
        env = _Env(os.environ if environ is None else environ)
        tasks = dict(DEFAULT_APIFY_TASKS)
        for brand in BRANDS:
            task = env.text(f"APIFY_TASK_{brand.upper()}")
            if task:
                tasks[brand] = task
        delay_min = env.number("DOWNLOAD_DELAY_MIN", float, 0.5, minimum=0)
        delay_max = env.number("DOWNLOAD_DELAY_MAX", float, 2.0, minimum=0)
        if delay_max < delay_min:
            raise ConfigError(
                f"DOWNLOAD_DELAY_MAX ({delay_max}) must not be below "
                f"DOWNLOAD_DELAY_MIN ({delay_min})"
            )
        availability_delay_min = env.number("AVAILABILITY_DELAY_MIN", float, 5.0, minimum=0)
        availability_delay_max = env.number("AVAILABILITY_DELAY_MAX", float, 8.0, minimum=0)
        if availability_delay_max < availability_delay_min:
            raise ConfigError(
                f"AVAILABILITY_DELAY_MAX ({availability_delay_max}) must not be below "
                f"AVAILABILITY_DELAY_MIN ({availability_delay_min})"
            )
        return cls(
            staging_db_url=env.url("STAGING_DB_URL", ("postgresql", "postgres")),
            production_db_url=env.url("PRODUCTION_DB_URL", ("postgresql", "postgres")),
            proxy_url=env.url("PROXY_URL", ("http", "https")),
            proxy_ca_bundle=env.path("PROXY_CA_BUNDLE", must_exist=True),
            download_timeout=env.number("DOWNLOAD_TIMEOUT", float, 30.0, minimum=0.001),
            product_timeout=env.number("PRODUCT_TIMEOUT", float, 120.0, minimum=0.001),
            max_retries=env.number("MAX_RETRIES", int, 3, minimum=1),
            batch_size=env.number("BATCH_SIZE", int, 200, minimum=1),
            concurrent_downloads=env.number("CONCURRENT_DOWNLOADS", int, 10, minimum=1),
            download_delay_min=delay_min,
            download_delay_max=delay_max,
            backoff_schedule=env.float_list("BACKOFF_SCHEDULE", (5.0, 15.0, 45.0)),
            allowed_photo_hosts=env.word_list("ALLOWED_PHOTO_HOSTS", DEFAULT_ALLOWED_PHOTO_HOSTS),
            max_photo_bytes=env.number("MAX_PHOTO_BYTES", int, 25 * 1024 * 1024, minimum=1),
            max_photo_pixels=env.number("MAX_PHOTO_PIXELS", int, 40_000_000, minimum=1),
            s3_endpoint=env.endpoint("S3_ENDPOINT"),
            s3_access_key=env.secret("S3_ACCESS_KEY"),
            s3_secret_key=env.secret("S3_SECRET_KEY"),
            s3_bucket=env.text("S3_BUCKET") or "unde-images",
            s3_public_base_url=env.plain_url("S3_PUBLIC_BASE_URL", ("http", "https", "file")),
            s3_region=env.text("S3_REGION") or "us-east-1",
            s3_user_media_bucket=env.text("S3_USER_MEDIA_BUCKET") or "unde-user-media",
            apify_token=env.secret("APIFY_TOKEN"),
            apify_api_url=env.plain_url("APIFY_API_URL", ("http", "https"))
            or "https://api.apify.com",
            apify_tasks=tasks,
            apify_wait_seconds=env.number("APIFY_WAIT_SECONDS", float, 3 * 3600.0, minimum=1),
            ximilar_api_token=env.secret("XIMILAR_API_TOKEN"),
            ximilar_collection_id=env.secret("XIMILAR_COLLECTION_ID"),
            ximilar_api_url=env.plain_url("XIMILAR_API_URL", ("http", "https"))
            or "https://api.ximilar.com",
            ximilar_api_prefix=(
                env.text("XIMILAR_API_PREFIX") or "similarity/fashion-new/v2"
            ).strip("/"),
            ximilar_rate_limit=env.number("XIMILAR_RATE_LIMIT", float, 10.0, minimum=0.001),
            collage_quality=env.number("COLLAGE_QUALITY", int, 95, minimum=1, maximum=100),
            zara_user_agent=env.text("ZARA_USER_AGENT"),
            dubai_zara_stores=env.store_ids("DUBAI_ZARA_STORES"),
            zara_base_url=env.plain_url("ZARA_BASE_URL", ("http", "https"))
            or "https://www.zara.com",
            zara_country=(env.text("ZARA_COUNTRY") or "ae").lower(),
            zara_lang=(env.text("ZARA_LANG") or "en").lower(),
            zara_store_lat=env.number("ZARA_STORE_LAT", float, 25.2048, minimum=-90, maximum=90),
            zara_store_lng=env.number("ZARA_STORE_LNG", float, 55.2708, minimum=-180, maximum=180),
            zara_store_radius=env.number("ZARA_STORE_RADIUS", int, 100, minimum=1),
            availability_run_seconds=env.number(
                "AVAILABILITY_RUN_SECONDS", float, 3000.0, minimum=1
            ),
            availability_concurrency=env.number("AVAILABILITY_CONCURRENCY", int, 1, minimum=1),
            availability_delay_min=availability_delay_min,
            availability_delay_max=availability_delay_max,
            availability_max_blocks=env.number("AVAILABILITY_MAX_BLOCKS", int, 3, minimum=1),
            availability_block_backoff=env.number(
                "AVAILABILITY_BLOCK_BACKOFF", float, 30.0, minimum=0
            ),
            availability_retention_days=env.number(
                "AVAILABILITY_RETENTION_DAYS", int, 90, minimum=1
            ),
            data_dir=env.path("DATA_DIR") or Path("data"),
            lease_seconds=env.number("LEASE_SECONDS", float, 3600.0, minimum=1),
        )


@attrs.frozen
class _Env:
    """Typed readers over an environment mapping; each error names its variable."""

    environ: Mapping[str, str]

    def text(self, name: str) -> str | None:
        value = self.environ.get(name, "").strip()
        return value or None

    def secret(self, name: str) -> Secret | None:
        value = self.text(name)
        return None if value is None else Secret(value)

    def number(
        self,
        name: str,
        kind: Callable[[str], _T],
        default: _T,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
    ) -> _T:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = kind(raw)
        except ValueError:
            what = "a whole number" if kind is int else "a number"
            raise ConfigError(f"{name} must be {what}, got {raw!r}") from None
        number = float(value)  # type: ignore[arg-type]
        if minimum is not None and number < minimum:
            raise ConfigError(f"{name} must be at least {minimum:g}, got {raw!r}")
        if maximum is not None and number > maximum:
            raise ConfigError(f"{name} must be at most {maximum:g}, got {raw!r}")
        return value

    def float_list(self, name: str, default: tuple[float, ...]) -> tuple[float, ...]:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            values = tuple(float(part) for part in raw.split(",") if part.strip())
        except ValueError:
            raise ConfigError(
                f"{name} must be comma-separated seconds like '5,15,45', got {raw!r}"
            ) from None
        if not values or any(v < 0 for v in values):
            raise ConfigError(f"{name} must list at least one non-negative delay, got {raw!r}")
        return values

    def int_list(self, name: str) -> tuple[int, ...]:
        raw = self.text(name)
        if raw is None:
            return ()
        try:
            ids = tuple(int(part) for part in raw.split(",") if part.strip())
        except ValueError:
            raise ConfigError(
                f"{name} must be comma-separated numeric store ids like '1234,5678', got {raw!r}"
            ) from None
        if any(i <= 0 for i in ids):
            raise ConfigError(f"{name} must be comma-separated positive store ids, got {raw!r}")
        return ids

    def store_ids(self, name: str) -> tuple[int, ...]:
        raw = self.text(name)
        if raw is None:
            return ()
        if "PLACEHOLDER" in raw.upper():
            raise ConfigError(
                f"{name} still holds the source document's placeholder {raw!r}: set it to the"
                " comma-separated numeric ids of the stores to poll, or leave it unset to poll"
                " every stored store of the brand"
            )
        return self.int_list(name)

    def word_list(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        raw = self.text(name)
        if raw is None:
            return default
        words = tuple(part.strip().lower() for part in raw.split(",") if part.strip())
        if not words:
            raise ConfigError(f"{name} must list at least one host name")
        return words

    def path(self, name: str, *, must_exist: bool = False) -> Path | None:
        raw = self.text(name)
        if raw is None:
            return None
        path = Path(raw)
        if must_exist and not path.is_file():
            raise ConfigError(f"{name} points at {raw!r}, which is not a readable file")
        return path

    def _checked(self, name: str, raw: str, schemes: tuple[str, ...], shown: str) -> None:
        try:
            parts = urlsplit(raw)
            port = parts.port  # raises on a malformed port
        except ValueError:
            raise ConfigError(f"{name} is not a valid URL: {shown}") from None
        if parts.scheme not in schemes:
            expected = " or ".join(f"{s}://" for s in schemes)
            raise ConfigError(f"{name} must start with {expected}, got {shown}")
        if (
            parts.scheme != "file"
            and not parts.hostname
            and parts.scheme
            not in (
                "postgresql",
                "postgres",
            )
        ):
            raise ConfigError(f"{name} has no host: {shown}")
        del port

    def url(self, name: str, schemes: tuple[str, ...]) -> Secret | None:
        raw = self.text(name)
        if raw is None:
            return None
        self._checked(name, raw, schemes, repr(redact_url(raw)))
        return Secret(raw)

    def plain_url(self, name: str, schemes: tuple[str, ...]) -> str | None:
        raw = self.text(name)
        if raw is None:
            return None
        self._checked(name, raw, schemes, repr(redact_url(raw)))
        return raw.rstrip("/")

    def endpoint(self, name: str) -> str | None:
        return self.plain_url(name, ("http", "https", "file"))
