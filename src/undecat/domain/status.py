"""The three status machines of ``raw_products`` and the run status of ``scraper_logs``.

Each machine is a table of allowed transitions keyed by (state, event). Jobs never write a
status directly: they ask :func:`next_image_status` (and friends) for the state an event
leads to, and an event that is not allowed from the current state raises
:class:`IllegalTransitionError`. The database adapter writes only states these functions
return, so a forbidden state cannot be reached by any sequence of events.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import TypeVar

from undecat.errors import UndecatError

__all__ = [
    "IMAGE_TRANSITIONS",
    "RETRY_OF",
    "SYNC_TRANSITIONS",
    "XIMILAR_TRANSITIONS",
    "IllegalTransitionError",
    "ImageEvent",
    "ImageStatus",
    "RunStatus",
    "SyncEvent",
    "SyncStatus",
    "XimilarEvent",
    "XimilarStatus",
    "next_image_status",
    "next_sync_status",
    "next_ximilar_status",
]


class IllegalTransitionError(UndecatError):
    """An event was applied to a state that does not allow it."""


class ImageStatus(enum.StrEnum):
    """``raw_products.image_status``: pending -> uploaded -> collage_ready | error."""

    PENDING = "pending"
    UPLOADED = "uploaded"
    COLLAGE_READY = "collage_ready"
    ERROR = "error"


class ImageEvent(enum.StrEnum):
    """What can happen to a product's photos."""

    PHOTOS_STORED = "photos_stored"  # downloader: every photo is in the object store
    DOWNLOAD_FAILED = "download_failed"
    COLLAGE_STORED = "collage_stored"
    COLLAGE_FAILED = "collage_failed"
    RETRY_DOWNLOAD = "retry_download"  # retry_failed of the downloader
    RETRY_COLLAGE = "retry_collage"  # retry_failed of the collage builder
    PHOTOS_CHANGED = "photos_changed"  # re-collect brought other photo URLs


_I = ImageStatus
_IE = ImageEvent
IMAGE_TRANSITIONS: Mapping[tuple[ImageStatus, ImageEvent], ImageStatus] = {
    (_I.PENDING, _IE.PHOTOS_STORED): _I.UPLOADED,
    (_I.PENDING, _IE.DOWNLOAD_FAILED): _I.ERROR,
    (_I.UPLOADED, _IE.COLLAGE_STORED): _I.COLLAGE_READY,
    # A collage failure is the collage stage's own (``collage_error``): the photos are
    # still uploaded, and Ximilar keeps working on them.
    (_I.UPLOADED, _IE.COLLAGE_FAILED): _I.UPLOADED,
    (_I.ERROR, _IE.RETRY_DOWNLOAD): _I.PENDING,
    (_I.UPLOADED, _IE.RETRY_COLLAGE): _I.UPLOADED,
    **{(state, _IE.PHOTOS_CHANGED): _I.PENDING for state in ImageStatus},
}


class XimilarStatus(enum.StrEnum):
    """``raw_products.ximilar_status``: pending -> partial -> synced | error."""

    PENDING = "pending"
    PARTIAL = "partial"
    SYNCED = "synced"
    ERROR = "error"


class XimilarEvent(enum.StrEnum):
    """What can happen to a product's records in the Ximilar collection."""

    SOME_SYNCED = "some_synced"  # fewer than the target photos are confirmed
    ALL_SYNCED = "all_synced"  # every target photo is confirmed
    FAILED = "failed"
    RETRY = "retry"  # ximilar_retry
    TARGET_RAISED = "target_raised"  # progressive ingestion asks for more photos
    PHOTOS_CHANGED = "photos_changed"  # stale records must be replaced
    REMOVED = "removed"  # delisted: records deleted from the collection


_X = XimilarStatus
_XE = XimilarEvent
XIMILAR_TRANSITIONS: Mapping[tuple[XimilarStatus, XimilarEvent], XimilarStatus] = {
    (_X.PENDING, _XE.SOME_SYNCED): _X.PARTIAL,
    (_X.PENDING, _XE.ALL_SYNCED): _X.SYNCED,
    (_X.PARTIAL, _XE.SOME_SYNCED): _X.PARTIAL,
    (_X.PARTIAL, _XE.ALL_SYNCED): _X.SYNCED,
    (_X.PENDING, _XE.FAILED): _X.ERROR,
    (_X.PARTIAL, _XE.FAILED): _X.ERROR,
    (_X.ERROR, _XE.RETRY): _X.PENDING,
    (_X.SYNCED, _XE.TARGET_RAISED): _X.PARTIAL,
    (_X.PARTIAL, _XE.TARGET_RAISED): _X.PARTIAL,
    (_X.PENDING, _XE.TARGET_RAISED): _X.PENDING,
    **{(state, _XE.PHOTOS_CHANGED): _X.PENDING for state in XimilarStatus},
    **{(state, _XE.REMOVED): _X.PENDING for state in XimilarStatus},
}


class SyncStatus(enum.StrEnum):
    """``raw_products.sync_status``: pending -> synced | skipped | error."""

    PENDING = "pending"
    SYNCED = "synced"
    SKIPPED = "skipped"
    ERROR = "error"


class SyncEvent(enum.StrEnum):
    """What can happen to a product on its way to production."""

    COPIED = "copied"
    FAILED_VERIFICATION = "failed_verification"
    FAILED = "failed"
    CHANGED = "changed"  # any stored field changed: copy it again
    RETRY = "retry"


_S = SyncStatus
_SE = SyncEvent
SYNC_TRANSITIONS: Mapping[tuple[SyncStatus, SyncEvent], SyncStatus] = {
    (_S.PENDING, _SE.COPIED): _S.SYNCED,
    (_S.PENDING, _SE.FAILED_VERIFICATION): _S.SKIPPED,
    (_S.PENDING, _SE.FAILED): _S.ERROR,
    (_S.ERROR, _SE.RETRY): _S.PENDING,
    **{(state, _SE.CHANGED): _S.PENDING for state in SyncStatus},
}


class RunStatus(enum.StrEnum):
    """``scraper_logs.status`` of one job run."""

    RUNNING = "running"
    SUCCESS = "success"
    PARTIAL = "partial"  # the job did its work but some products failed
    FAILED = "failed"  # the job could not do its work (outage, bad config, failed Apify run)
    INTERRUPTED = "interrupted"  # stopped by SIGTERM / SIGINT; leases of unstarted work released
    ABANDONED = "abandoned"  # its process died; marked by a later run of the job on that host


_State = TypeVar("_State", bound=enum.StrEnum)
_Event = TypeVar("_Event", bound=enum.StrEnum)


def _step(
    table: Mapping[tuple[_State, _Event], _State], machine: str, state: _State, event: _Event
) -> _State:
    try:
        return table[state, event]
    except KeyError:
        raise IllegalTransitionError(
            f"{machine}: event {event.value!r} is not allowed in state {state.value!r}"
        ) from None


#: A retry undoes only its own stage's failure (each stage keeps its reason in its own
#: ``{stage}_error`` column, migration 0007).
RETRY_OF: Mapping[ImageEvent, ImageEvent] = {
    ImageEvent.RETRY_DOWNLOAD: ImageEvent.DOWNLOAD_FAILED,
    ImageEvent.RETRY_COLLAGE: ImageEvent.COLLAGE_FAILED,
}


def next_image_status(
    state: ImageStatus, event: ImageEvent, *, last_failure: ImageEvent | None = None
) -> ImageStatus:
    """Return the image status ``event`` leads to from ``state``, or raise.

    A retry event needs ``last_failure``, the event that put the row in ``error``: the
    downloader's retry cannot revive a collage failure, nor the other way round. (The
    database tells them apart by the stage's own ``{stage}_error`` column.)
    """
    required = RETRY_OF.get(event)
    if required is not None and last_failure is not required:
        raise IllegalTransitionError(
            f"image_status: {event.value!r} undoes {required.value!r}, "
            f"but the last failure was {last_failure.value if last_failure else None!r}"
        )
    return _step(IMAGE_TRANSITIONS, "image_status", state, event)


def next_ximilar_status(state: XimilarStatus, event: XimilarEvent) -> XimilarStatus:
    """Return the Ximilar status ``event`` leads to from ``state``, or raise."""
    return _step(XIMILAR_TRANSITIONS, "ximilar_status", state, event)


def next_sync_status(state: SyncStatus, event: SyncEvent) -> SyncStatus:
    """Return the sync status ``event`` leads to from ``state``, or raise."""
    return _step(SYNC_TRANSITIONS, "sync_status", state, event)
