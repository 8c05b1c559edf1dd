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
    "QueueCounts",
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


@attrs.frozen
class QueueCounts:
    """Where one stage's rows stand, for ``undecat status``.

    ``leased``: held by a live lease; ``stale``: held by a lease that lapsed (a worker that
    died); ``failed``: failed with attempts left (``retry_failed`` takes them); ``exhausted``:
    gave up after the last attempt (only ``undecat requeue`` brings them back);
    ``waiting``: not claimable before a later time (a requeued failure's spacing, or a
    partial Ximilar row).
    """

    stage: Stage
    claimable: int = 0
    leased: int = 0
    stale: int = 0
    failed: int = 0
    exhausted: int = 0
    waiting: int = 0
