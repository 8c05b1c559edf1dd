"""Configuration from the environment, with the source document's variable names.

:meth:`Config.from_env` reads every variable once, checks it, and raises one
:class:`~undecat.errors.ConfigError` naming the first variable that is malformed. Defaults
point at localhost or an embedded service, never at a production host. Secrets are held as
:class:`~undecat.redact.Secret`, so ``repr(config)`` never shows a password, token or key.
The full table of variables is in ``docs/configuration.md``.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import attrs

from undecat.domain.models import BRANDS
from undecat.errors import ConfigError
from undecat.redact import Secret, redact_url, url_userinfo

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
_BRAND = re.compile(r"[a-z][a-z0-9]{0,39}")


def _show_url(secret: Secret | None) -> str:
    return "None" if secret is None else repr(redact_url(secret.reveal()))


def _show_plain_url(url: str | None) -> str:
    return "None" if url is None else repr(redact_url(url))


@attrs.frozen
class Config:
    """Every setting of every host, read from the environment once."""

    # Databases (URLs carry passwords: held as secrets, shown redacted).
    staging_db_url: Secret | None = attrs.field(default=None, repr=_show_url)
    production_db_url: Secret | None = attrs.field(default=None, repr=_show_url)
    db_connect_timeout: float = 5.0

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
    # Hosts (host or host:port) whose photos may come over plain http; none by default.
    allowed_photo_http_hosts: tuple[str, ...] = ()
    max_photo_bytes: int = 25 * 1024 * 1024
    max_photo_pixels: int = 40_000_000
    photos_per_product: int = 5
    proxy_breaker_threshold: int = 5

    # Object storage. ``s3_endpoint`` None means the embedded filesystem store in DATA_DIR.
    s3_endpoint: str | None = attrs.field(default=None, repr=_show_plain_url)
    s3_access_key: Secret | None = None
    s3_secret_key: Secret | None = None
    s3_bucket: str = "unde-images"
    s3_public_base_url: str | None = attrs.field(default=None, repr=_show_plain_url)
    s3_region: str = "us-east-1"
    s3_user_media_bucket: str = "unde-user-media"

    # Apify.
    apify_token: Secret | None = None
    apify_api_url: str = attrs.field(default="https://api.apify.com", repr=_show_plain_url)
    apify_tasks: Mapping[str, str] = attrs.field(factory=lambda: dict(DEFAULT_APIFY_TASKS))
    apify_wait_seconds: float = 3 * 3600.0

    # Ximilar.
    ximilar_api_token: Secret | None = None
    ximilar_collection_id: Secret | None = None
    ximilar_api_url: str = attrs.field(default="https://api.ximilar.com", repr=_show_plain_url)
    ximilar_api_prefix: str = "similarity/fashion-new/v2"
    ximilar_rate_limit: float = 10.0

    # Collage.
    collage_quality: int = 95
    collage_workers: int = 2

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
    stop_grace_seconds: float = 45.0

    # User media (the backend's library, undecat.user_media).
    user_media_max_main_bytes: int = 8 * 1024 * 1024
    user_media_max_thumb_bytes: int = 64 * 1024
    user_media_max_pixels: int = 50_000_000
    user_media_url_seconds: int = 900
    user_media_keep_location: bool = False
    user_media_erase_batch: int = 500
    # Operations (health, metrics).
    metrics_dir: Path | None = None
    health_proxy_probe_url: str = "https://static.zara.net/"
    # Operations (issue 17). ``object_store_dir``: the single-host folder store; with neither
    # it nor ``s3_endpoint`` set, a runner refuses to start (see ``require_object_store``).
    object_store_dir: Path | None = None
    brands: tuple[str, ...] = BRANDS
    retry_delay_seconds: float = 300.0
    run_log_retention_days: int = 180
    delisted_retention_days: int = 90
    migrate_lock_timeout: float = 5.0
    migrate_attempts: int = 5
    failure_webhook_url: Secret | None = attrs.field(default=None, repr=_show_url)

    def public_base_url(self) -> str:
        """Return the base URL under which stored objects are publicly readable."""
        if self.s3_public_base_url:
            return self.s3_public_base_url.rstrip("/")
        if self.s3_endpoint is None and self.object_store_dir is not None:
            return (self.object_store_dir / self.s3_bucket).resolve().as_uri()
        if self.s3_endpoint is None:
            return (self.data_dir / "objects" / self.s3_bucket).resolve().as_uri()
        if self.s3_endpoint.startswith("file://"):
            return f"{self.s3_endpoint.rstrip('/')}/{self.s3_bucket}"
        return f"{self.s3_endpoint.rstrip('/')}/{self.s3_bucket}"

    def object_store_root(self) -> str:
        """Return ``S3_ENDPOINT``, or ``OBJECT_STORE_DIR`` as a ``file://`` URL; else refuse.

        Outside the demo no host may fall back to a folder of its own: a downloader storing
        photos locally while the collage host looks elsewhere fails every product silently.
        """
        if self.s3_endpoint is not None:
            return self.s3_endpoint
        if self.object_store_dir is not None:
            return self.object_store_dir.resolve().as_uri()
        raise ConfigError(
            "no object store is configured: set S3_ENDPOINT (hosts sharing a bucket) or"
            " OBJECT_STORE_DIR (a single-host install keeping objects in a folder)"
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        """Build the configuration from ``environ`` (default: ``os.environ``)."""
        env = _Env(os.environ if environ is None else environ)
        tasks = dict(DEFAULT_APIFY_TASKS)
        brands = env.brands("BRANDS", BRANDS)
        for brand in brands:
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
            db_connect_timeout=env.number("DB_CONNECT_TIMEOUT", float, 5.0, minimum=1, maximum=60),
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
            allowed_photo_hosts=env.host_list("ALLOWED_PHOTO_HOSTS", DEFAULT_ALLOWED_PHOTO_HOSTS),
            allowed_photo_http_hosts=env.host_list("ALLOWED_PHOTO_HTTP_HOSTS", ()),
            max_photo_bytes=env.number("MAX_PHOTO_BYTES", int, 25 * 1024 * 1024, minimum=1),
            max_photo_pixels=env.number("MAX_PHOTO_PIXELS", int, 40_000_000, minimum=1),
            proxy_breaker_threshold=env.number("PROXY_BREAKER_THRESHOLD", int, 5, minimum=1),
            s3_endpoint=env.endpoint("S3_ENDPOINT"),
            s3_access_key=env.secret("S3_ACCESS_KEY"),
            s3_secret_key=env.secret("S3_SECRET_KEY"),
            s3_bucket=env.text("S3_BUCKET") or "unde-images",
            s3_public_base_url=env.plain_url("S3_PUBLIC_BASE_URL", ("http", "https", "file")),
            s3_region=env.text("S3_REGION") or "us-east-1",
            s3_user_media_bucket=env.text("S3_USER_MEDIA_BUCKET") or "unde-user-media",
            apify_token=env.secret("APIFY_TOKEN"),
            apify_api_url=env.token_url("APIFY_API_URL") or "https://api.apify.com",
            apify_tasks=tasks,
            apify_wait_seconds=env.number("APIFY_WAIT_SECONDS", float, 3 * 3600.0, minimum=1),
            ximilar_api_token=env.secret("XIMILAR_API_TOKEN"),
            ximilar_collection_id=env.secret("XIMILAR_COLLECTION_ID"),
            ximilar_api_url=env.token_url("XIMILAR_API_URL") or "https://api.ximilar.com",
            ximilar_api_prefix=(
                env.text("XIMILAR_API_PREFIX") or "similarity/fashion-new/v2"
            ).strip("/"),
            ximilar_rate_limit=env.number("XIMILAR_RATE_LIMIT", float, 10.0, minimum=0.001),
            collage_quality=env.number("COLLAGE_QUALITY", int, 95, minimum=1, maximum=100),
            collage_workers=env.number("COLLAGE_WORKERS", int, 2, minimum=1, maximum=16),
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
            user_media_max_main_bytes=env.number(
                "USER_MEDIA_MAX_MAIN_BYTES", int, 8 * 1024 * 1024, minimum=1
            ),
            user_media_max_thumb_bytes=env.number(
                "USER_MEDIA_MAX_THUMB_BYTES", int, 64 * 1024, minimum=1
            ),
            user_media_max_pixels=env.number("USER_MEDIA_MAX_PIXELS", int, 50_000_000, minimum=1),
            user_media_url_seconds=env.number(
                "USER_MEDIA_URL_SECONDS", int, 900, minimum=1, maximum=7 * 24 * 3600
            ),
            user_media_keep_location=env.flag("USER_MEDIA_KEEP_LOCATION"),
            user_media_erase_batch=env.number(
                "USER_MEDIA_ERASE_BATCH", int, 500, minimum=1, maximum=1000
            ),
            metrics_dir=env.path("UNDECAT_METRICS_DIR"),
            health_proxy_probe_url=env.plain_url("HEALTH_PROXY_PROBE_URL", ("http", "https"))
            or "https://static.zara.net/",
            object_store_dir=env.path("OBJECT_STORE_DIR"),
            brands=brands,
            retry_delay_seconds=env.number("RETRY_DELAY_SECONDS", float, 300.0, minimum=0),
            run_log_retention_days=env.number("RUN_LOG_RETENTION_DAYS", int, 180, minimum=7),
            delisted_retention_days=env.number("DELISTED_RETENTION_DAYS", int, 90, minimum=1),
            migrate_lock_timeout=env.number(
                "MIGRATE_LOCK_TIMEOUT", float, 5.0, minimum=0.001, maximum=3600
            ),
            migrate_attempts=env.number("MIGRATE_ATTEMPTS", int, 5, minimum=1),
            failure_webhook_url=env.url("FAILURE_WEBHOOK_URL", ("http", "https")),
            stop_grace_seconds=env.number("STOP_GRACE_SECONDS", float, 45.0, minimum=0.1),
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

    def host_list(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        """Comma-separated ``host`` or ``host:port`` entries (photo allow-lists)."""
        if self.text(name) is None:
            return default
        words = self.word_list(name, default)
        for word in words:
            if any(ch in word for ch in "/@?#") or not _HOST_ENTRY.fullmatch(word):
                raise ConfigError(
                    f"{name} must list host names or host:port, like 'static.zara.net,"
                    f" cdn.example:8443', got {word!r}"
                )
        return words

    def brands(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        raw = self.text(name)
        if raw is None:
            return default
        words = tuple(dict.fromkeys(p.strip().lower() for p in raw.split(",") if p.strip()))
        bad = [w for w in words if not _BRAND.fullmatch(w)]
        if not words or bad:
            raise ConfigError(
                f"{name} must be comma-separated brand slugs like 'zara,bershka'"
                f" (lower-case letters and digits), got {raw!r}"
            )
        return words

    def path(self, name: str, *, must_exist: bool = False) -> Path | None:
        raw = self.text(name)
        if raw is None:
            return None
        path = Path(raw)
        if must_exist and not path.is_file():
            raise ConfigError(f"{name} points at {raw!r}, which is not a readable file")
        return path

    def _checked(self, name: str, raw: str, schemes: tuple[str, ...]) -> None:
        """Check a URL; no message echoes it (it may hold a password that did not parse)."""
        _check_userinfo(name, raw)
        try:
            parts = urlsplit(raw)
            port = parts.port  # raises on a malformed port
        except ValueError:
            raise ConfigError(f"{name} is not a valid URL") from None
        if parts.scheme not in schemes:
            expected = " or ".join(f"{s}://" for s in schemes)
            got = f"{parts.scheme}://" if parts.scheme and "://" in raw else "no scheme"
            raise ConfigError(f"{name} must start with {expected}, got {got}")
        if (
            parts.scheme != "file"
            and not parts.hostname
            and parts.scheme
            not in (
                "postgresql",
                "postgres",
            )
        ):
            raise ConfigError(f"{name} has no host")
        del port

    def url(self, name: str, schemes: tuple[str, ...]) -> Secret | None:
        raw = self.text(name)
        if raw is None:
            return None
        self._checked(name, raw, schemes)
        return Secret(raw)

    def plain_url(self, name: str, schemes: tuple[str, ...]) -> str | None:
        raw = self.text(name)
        if raw is None:
            return None
        self._checked(name, raw, schemes)
        return raw.rstrip("/")

    def endpoint(self, name: str) -> str | None:
        return self.plain_url(name, ("http", "https", "file"))

    def flag(self, name: str) -> bool:
        raw = (self.text(name) or "false").lower()
        if raw in ("1", "true", "yes", "on"):
            return True
        if raw in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name} must be true or false (1/0, yes/no), got {raw!r}")

    def token_url(self, name: str) -> str | None:
        """An API base URL a token is sent to: https, or http only to a loopback host."""
        url = self.plain_url(name, ("http", "https"))
        if url is not None and urlsplit(url).scheme == "http":
            host = urlsplit(url).hostname or ""
            if not _is_loopback(host):
                raise ConfigError(
                    f"{name} must be https:// (the API token would cross the network in clear);"
                    " http:// is accepted only for a loopback host such as 127.0.0.1"
                )
        return url


_HOST_ENTRY = re.compile(r"(?:[a-z0-9._-]+|\[[0-9a-f:.]+\])(?::\d{1,5})?")

#: What RFC 3986 allows unencoded in userinfo: unreserved, sub-delims, ":" and %XX escapes.
_USERINFO = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:]|%[0-9A-Fa-f]{2})*")


def _check_userinfo(name: str, raw: str) -> None:
    """Refuse a user name or password with unencoded reserved characters, naming only ``name``."""
    userinfo = url_userinfo(raw)
    if userinfo is None:
        return
    if not _USERINFO.fullmatch(userinfo):
        raise ConfigError(
            f"{name}: the user name or password holds characters that must be percent-encoded"
            " (write / ? # @ [ ] % and spaces as %2F %3F %23 %40 %5B %5D %25 %20)"
        )


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
