"""The work stages that claim products, and what each one writes when it is done."""

from __future__ import annotations

import enum

import attrs

from undecat.domain.status import SyncStatus, XimilarStatus

__all__ = [
    "CollageStored",
    "Outcome",
    "PhotosStored",
    "ProductionDone",
    "Stage",
    "XimilarProgress",
]


class Stage(enum.StrEnum):
    """A stage that leases products. Each has its own lease, so stages never block each other.

    * ``download`` -- ``image_status='pending'`` rows (photo downloader);
    * ``collage`` -- ``image_status='uploaded'`` rows (collage builder);
    * ``ximilar`` -- pilot rows whose Ximilar records are incomplete or stale;
    * ``sync`` -- ``sync_status='pending'`` rows (production sync).
    """

    DOWNLOAD = "download"
    COLLAGE = "collage"
    XIMILAR = "ximilar"
    SYNC = "sync"


@attrs.frozen
class PhotosStored:
    """Download outcome: every photo is in the object store, at these public URLs."""

    image_urls: tuple[str, ...]


@attrs.frozen
class CollageStored:
    """Collage outcome: the collage is in the object store at this public URL."""

    collage_url: str


@attrs.frozen
class XimilarProgress:
    """Ximilar outcome: the records Ximilar confirmed, and the status that follows."""

    synced_urls: tuple[str, ...]
    record_ids: tuple[str, ...]
    status: XimilarStatus


@attrs.frozen
class ProductionDone:
    """Production-sync outcome: ``synced``, or ``skipped`` with the reason."""

    status: SyncStatus
    reason: str | None = None


Outcome = PhotosStored | CollageStored | XimilarProgress | ProductionDone
