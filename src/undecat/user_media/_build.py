"""Builds the adapters of :class:`~undecat.user_media.UserMedia` (its composition root, for now).

Kept to one function so that it can move into a typed composition root later.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from undecat.adapters.imaging.media_pair import MediaLimits, PairChecker
from undecat.adapters.objectstore.user_media import UserMediaStore
from undecat.adapters.postgres.connection import Database
from undecat.adapters.postgres.user_media import PostgresMediaIndex
from undecat.config import Config
from undecat.errors import ConfigError
from undecat.settings import s3_settings

if TYPE_CHECKING:
    import psycopg_pool

    from undecat.user_media._facade import UserMedia

__all__ = ["build_user_media"]


def build_user_media(
    config: Config, pool: psycopg_pool.ConnectionPool[Any] | None = None
) -> UserMedia:
    """Build a UserMedia on ``S3_ENDPOINT`` + ``S3_USER_MEDIA_BUCKET`` and the production DB.

    ``pool`` (the backend's own psycopg pool on the production database) is used when given;
    otherwise a small pool on ``PRODUCTION_DB_URL`` is opened and closed with the UserMedia.
    """
    from undecat.user_media._facade import UserMedia  # noqa: PLC0415  # the facade imports us lazily

    settings = s3_settings(config)
    closers: list[Callable[[], None]] = []
    if pool is not None:
        index = PostgresMediaIndex(pool)
    elif config.production_db_url is None:
        raise ConfigError(
            "PRODUCTION_DB_URL is not set (the user media index lives in the production "
            "database; or pass a psycopg pool)"
        )
    else:
        database = Database(config.production_db_url, name="production", max_size=4)
        closers.append(database.close)
        index = PostgresMediaIndex(database)
    objects = UserMediaStore(settings, config.s3_user_media_bucket)
    checker = PairChecker(
        MediaLimits(
            max_main_bytes=config.user_media_max_main_bytes,
            max_thumb_bytes=config.user_media_max_thumb_bytes,
            max_pixels=config.user_media_max_pixels,
            keep_location=config.user_media_keep_location,
        )
    )
    closers.append(objects.close)
    return UserMedia(
        objects=objects,
        index=index,
        checker=checker,
        url_lifetime=timedelta(seconds=config.user_media_url_seconds),
        erase_batch=config.user_media_erase_batch,
        closers=closers,
    )
