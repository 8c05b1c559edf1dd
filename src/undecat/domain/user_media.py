"""What the user media library hands back: stored items, erasure reports, usage, index rows."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import timedelta

import attrs

from undecat.domain.keys import MediaItem, MediaKind

__all__ = [
    "MAX_URL_LIFETIME",
    "CheckedPair",
    "ErasureReport",
    "IndexedObject",
    "KindUsage",
    "StoredItem",
    "Usage",
    "checked_lifetime",
]

#: SigV4 presigned URLs live at most seven days.
MAX_URL_LIFETIME = timedelta(days=7)


def checked_lifetime(lifetime: timedelta) -> timedelta:
    """``lifetime`` if it is between 1 second and 7 days (SigV4's cap); ValueError if not."""
    if not timedelta(seconds=1) <= lifetime <= MAX_URL_LIFETIME:
        raise ValueError("a signed URL must live between 1 second and 7 days")
    return lifetime


@attrs.frozen
class CheckedPair:
    """An upload pair that passed the checks: the bytes to store and their pixel sizes."""

    main: bytes = attrs.field(repr=lambda b: f"<{len(b)} bytes>")
    thumb: bytes = attrs.field(repr=lambda b: f"<{len(b)} bytes>")
    main_size: tuple[int, int]
    thumb_size: tuple[int, int]
    #: Whether location metadata (EXIF GPS, XMP with GPS, trailing frames) was cut out.
    location_removed: bool


@attrs.frozen
class StoredItem:
    """One item stored in the bucket: its ids, keys, sizes and what was done to it."""

    user_id: str
    kind: MediaKind
    item_id: str
    main_key: str
    thumb_key: str
    main_bytes: int
    thumb_bytes: int
    width: int
    height: int
    thumb_width: int
    thumb_height: int
    #: Whether location metadata (EXIF GPS, XMP with GPS, trailing frames) was cut out.
    location_removed: bool


@attrs.frozen
class ErasureReport:
    """What erasing one user removed: objects (and their index rows), items and bytes."""

    user_id: str
    objects: int
    items: int
    bytes: int
    batches: int


@attrs.frozen
class KindUsage:
    """Complete items of one kind and their bytes (image and thumbnail together)."""

    items: int = 0
    bytes: int = 0


@attrs.frozen
class Usage:
    """What one user stores, per kind (every kind present, zeros when empty)."""

    user_id: str
    by_kind: Mapping[MediaKind, KindUsage]

    @property
    def items(self) -> int:
        """Items of every kind."""
        return sum(usage.items for usage in self.by_kind.values())

    @property
    def bytes(self) -> int:
        """Bytes of every kind."""
        return sum(usage.bytes for usage in self.by_kind.values())


@attrs.frozen
class IndexedObject:
    """One row of the index: the item an object belongs to, its key, size and store attempt."""

    item: MediaItem
    key: str
    bytes: int
    attempt: uuid.UUID
    complete: bool
