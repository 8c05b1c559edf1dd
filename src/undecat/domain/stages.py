"""The work stages that claim products, and what each one writes when it is done."""

from __future__ import annotations

import enum

import attrs

from undecat.domain.models import Product
from undecat.domain.status import SyncStatus, XimilarStatus

__all__ = [
    "CollageStored",
    "Outcome",
    "PhotosStored",
    "ProductionDone",
    "QueueCounts",
    "Stage",
    "XimilarProgress",
    "ximilar_waits_for_change",
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


def ximilar_waits_for_change(product: Product, progress: XimilarProgress) -> bool:
    """Whether a ``partial`` product cannot progress until its photos or its target change.

    That is so when every current photo of the product is in the collection and nothing
    stale is left: it simply has fewer photos than its target. Sending it again each run
    would only starve the others (issue 18), so it waits for a change instead.
    """
    if progress.status is not XimilarStatus.PARTIAL:
        return False
    from undecat.domain.ximilar import photo_slots  # noqa: PLC0415  # ximilar imports stages

    current = photo_slots(product)
    current_ids = {slot.record_id for slot in current}
    if any(rid not in current_ids for rid in progress.record_ids):
        return False  # a stale record still to delete: there is work left
    return len(progress.synced_urls) >= len(current)


@attrs.frozen
class QueueCounts:
    """Where one stage's rows stand, for ``undecat status``.

    ``leased``: held by a live lease; ``stale``: held by a lease that lapsed (a worker that
    died); ``failed``: failed with attempts left (``retry_failed`` takes them); ``exhausted``:
    gave up after the last attempt (only ``undecat requeue`` brings them back);
    ``waiting``: parked until their data changes (a partial Ximilar row).
    """

    stage: Stage
    claimable: int = 0
    leased: int = 0
    stale: int = 0
    failed: int = 0
    exhausted: int = 0
    waiting: int = 0
