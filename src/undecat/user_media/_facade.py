"""The :class:`UserMedia` facade: ids checked, images checked, index first, both or neither."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from undecat.config import Config
from undecat.domain.keys import MEDIA_FILES, MediaItem, MediaKind, check_user_id, media_item
from undecat.domain.user_media import (
    ErasureReport,
    KindUsage,
    StoredItem,
    Usage,
    checked_lifetime,
)
from undecat.errors import UndecatError, UserMediaError
from undecat.ports import MediaChecker, MediaIndex, MediaObjects

if TYPE_CHECKING:
    import psycopg_pool

__all__ = ["MediaChecker", "MediaIndex", "MediaObjects", "UserMedia"]


class UserMedia:
    """Store, sign, delete and erase the photos, try-on results and saved outfits of users.

    Every method takes ``(user_id, kind, item_id)``, checks the ids (:data:`SAFE_ID_PATTERN
    <undecat.domain.keys.SAFE_ID_PATTERN>`) and builds the keys itself; none takes a raw key.
    Refused input raises :class:`~undecat.errors.UserMediaError` with nothing written; S3 or
    PostgreSQL trouble raises an :class:`~undecat.errors.OutageError`. Thread-safe (the
    adapters are). Close it (or use ``with``) to release its connections.
    """

    def __init__(
        self,
        *,
        objects: MediaObjects,
        index: MediaIndex,
        checker: MediaChecker,
        url_lifetime: timedelta = timedelta(minutes=15),
        erase_batch: int = 500,
        closers: Iterable[Callable[[], None]] = (),
    ) -> None:
        if not 1 <= erase_batch <= 1000:
            raise ValueError("erase_batch must be between 1 and 1000 objects")
        self._objects = objects
        self._index = index
        self._checker = checker
        self.url_lifetime = checked_lifetime(url_lifetime)
        self._erase_batch = erase_batch
        self._closers = list(closers)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> UserMedia:
        """Build from the environment (default ``os.environ``); see docs/configuration.md."""
        return cls.from_config(Config.from_env(environ))

    @classmethod
    def from_config(
        cls, config: Config, *, pool: psycopg_pool.ConnectionPool[Any] | None = None
    ) -> UserMedia:
        """Build from a Config, on the backend's own psycopg ``pool`` when given."""
        from undecat.user_media._build import build_user_media  # noqa: PLC0415  # adapters load late

        return build_user_media(config, pool)

    def __repr__(self) -> str:
        return f"UserMedia(objects={self._objects!r}, index={self._index!r})"

    def store(
        self, user_id: str, kind: MediaKind | str, item_id: str, main: bytes, thumb: bytes
    ) -> StoredItem:
        """Check and store one item's image and thumbnail: both, or neither.

        The index rows are written first (incomplete), then the two uploads, then the rows
        are marked complete. A failed upload deletes both objects and, once they are surely
        gone, the rows; if even the clean-up fails, the incomplete rows stay for
        :meth:`erase_user` or a retry to find. Storing the same item again replaces both
        files, so retrying a failed call is safe.
        """
        item = media_item(user_id, kind, item_id)
        checked = self._checker.check(main, thumb, main_name=MEDIA_FILES[item.kind][0])
        attempt = self._index.begin(item, len(checked.main), len(checked.thumb))
        try:
            self._objects.put_pair(item, checked.main, checked.thumb)
        except UndecatError:
            # The upload's error is the one the caller needs; a clean-up that fails too
            # leaves the incomplete rows, which is what erase relies on.
            with contextlib.suppress(UndecatError):
                self._objects.delete_items([item])
                self._index.forget([(key, attempt) for key in item.keys])
            raise
        if self._index.complete(item, attempt) < 2:
            self._lost_race(item, attempt)
        return StoredItem(
            user_id=item.user_id,
            kind=item.kind,
            item_id=item.item_id,
            main_key=item.main_key,
            thumb_key=item.thumb_key,
            main_bytes=len(checked.main),
            thumb_bytes=len(checked.thumb),
            width=checked.main_size[0],
            height=checked.main_size[1],
            thumb_width=checked.thumb_size[0],
            thumb_height=checked.thumb_size[1],
            location_removed=checked.location_removed,
        )

    def _lost_race(self, item: MediaItem, attempt: uuid.UUID) -> None:
        """Our rows changed during the upload: a newer store of the item, or a deletion."""
        current = self._index.attempts(item)
        if len(current) == 2 and all(other != attempt for _, other in current):
            return  # a newer store of the same item owns the rows now: last writer wins
        # The item was deleted (or its user erased) while we uploaded: keep nothing.
        self._objects.delete_items([item])
        self._index.forget(current)
        raise UserMediaError("the item was deleted while it was being stored; nothing kept")

    def signed_urls(
        self,
        user_id: str,
        kind: MediaKind | str,
        item_id: str,
        *,
        expires: timedelta | None = None,
    ) -> tuple[str, str]:
        """Presigned GET URLs of the item's (image, thumbnail).

        Valid for ``expires`` (default ``USER_MEDIA_URL_SECONDS``, 15 minutes), at most
        7 days; ValueError outside 1 second .. 7 days. Made locally, without a request, so
        a URL of an item not stored answers 404.
        """
        item = media_item(user_id, kind, item_id)
        lifetime = self.url_lifetime if expires is None else checked_lifetime(expires)
        return self._objects.signed_urls(item, lifetime)

    def delete_item(self, user_id: str, kind: MediaKind | str, item_id: str) -> bool:
        """Delete one item's two objects and index rows; return whether it was indexed."""
        item = media_item(user_id, kind, item_id)
        entries = self._index.attempts(item)
        self._objects.delete_items([item])
        self._index.forget(entries)
        return bool(entries)

    def erase_user(self, user_id: str) -> ErasureReport:
        """Delete every object and index row of one user, in batches; report what went.

        Driven by the index (the bucket allows no LIST). Each batch deletes the objects,
        then their rows, so a crash at any point leaves rows for every object not yet
        deleted: running it again finishes the job. Other users are never touched.
        """
        user_id = check_user_id(user_id)
        objects = size = batches = 0
        items: set[tuple[MediaKind, str]] = set()
        while rows := self._index.next_batch(user_id, self._erase_batch):
            batches += 1
            self._objects.delete_items(list(dict.fromkeys(row.item for row in rows)))
            gone = set(self._index.forget([(row.key, row.attempt) for row in rows]))
            for row in rows:
                if row.key in gone:
                    objects += 1
                    size += row.bytes
                    items.add((row.item.kind, row.item.item_id))
        return ErasureReport(
            user_id, objects=objects, items=len(items), bytes=size, batches=batches
        )

    def usage(self, user_id: str) -> Usage:
        """Complete items and their bytes, per kind, of one user (from the index)."""
        user_id = check_user_id(user_id)
        totals = self._index.totals(user_id)
        return Usage(user_id, {kind: totals.get(kind, KindUsage()) for kind in MediaKind})

    def close(self) -> None:
        """Release the connections this UserMedia opened (not a pool it was given)."""
        for close in self._closers:
            close()
        self._closers.clear()

    def __enter__(self) -> UserMedia:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
