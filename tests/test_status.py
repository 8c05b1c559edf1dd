"""The status machines: property tests that no sequence of events reaches a forbidden state."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from undecat.domain.status import (
    IMAGE_TRANSITIONS,
    SYNC_TRANSITIONS,
    XIMILAR_TRANSITIONS,
    IllegalTransitionError,
    ImageEvent,
    ImageStatus,
    SyncEvent,
    SyncStatus,
    XimilarEvent,
    XimilarStatus,
    next_image_status,
    next_sync_status,
    next_ximilar_status,
)


@given(st.lists(st.sampled_from(ImageEvent), max_size=40))
def test_collage_ready_only_after_photos_then_collage(events: list[ImageEvent]) -> None:
    """collage_ready is reached only by a stored collage after stored photos of the current URLs."""
    state = ImageStatus.PENDING
    photos_stored = collage_stored = False
    last_failure: ImageEvent | None = None
    for event in events:
        try:
            state = next_image_status(state, event, last_failure=last_failure)
        except IllegalTransitionError:
            continue
        if event in (ImageEvent.DOWNLOAD_FAILED, ImageEvent.COLLAGE_FAILED):
            last_failure = event
        if event is ImageEvent.PHOTOS_CHANGED:
            photos_stored = collage_stored = False
        elif event is ImageEvent.PHOTOS_STORED:
            photos_stored, collage_stored = True, False
        elif event is ImageEvent.COLLAGE_STORED:
            collage_stored = True
        if state is ImageStatus.UPLOADED:
            assert photos_stored
        if state is ImageStatus.COLLAGE_READY:
            assert photos_stored
            assert collage_stored


@given(st.lists(st.sampled_from(XimilarEvent), max_size=40))
def test_synced_only_after_all_target_photos(events: list[XimilarEvent]) -> None:
    """Synced is reached only when every target photo was confirmed since the last reset."""
    state = XimilarStatus.PENDING
    complete = False
    for event in events:
        try:
            state = next_ximilar_status(state, event)
        except IllegalTransitionError:
            continue
        if event is XimilarEvent.ALL_SYNCED:
            complete = True
        elif event in (
            XimilarEvent.PHOTOS_CHANGED,
            XimilarEvent.REMOVED,
            XimilarEvent.TARGET_RAISED,
            XimilarEvent.SOME_SYNCED,
        ):
            complete = False
        if state is XimilarStatus.SYNCED:
            assert complete


@given(st.lists(st.sampled_from(SyncEvent), max_size=40))
def test_production_synced_only_after_a_copy_of_the_current_values(events: list[SyncEvent]) -> None:
    """sync_status is synced only when a copy happened after the last change."""
    state = SyncStatus.PENDING
    copied = False
    for event in events:
        try:
            state = next_sync_status(state, event)
        except IllegalTransitionError:
            continue
        if event is SyncEvent.COPIED:
            copied = True
        elif event is SyncEvent.CHANGED:
            copied = False
        if state is SyncStatus.SYNCED:
            assert copied


@pytest.mark.parametrize(
    ("table", "states"),
    [
        (IMAGE_TRANSITIONS, ImageStatus),
        (XIMILAR_TRANSITIONS, XimilarStatus),
        (SYNC_TRANSITIONS, SyncStatus),
    ],
)
def test_every_state_is_reachable_and_can_start_over(
    table: object, states: type[ImageStatus] | type[XimilarStatus] | type[SyncStatus]
) -> None:
    """From pending every state is reachable, and from every state pending is reachable."""
    assert isinstance(table, dict)
    edges: dict[object, set[object]] = {}
    for (source, _), target in table.items():
        edges.setdefault(source, set()).add(target)

    def reachable(start: object) -> set[object]:
        seen, todo = {start}, [start]
        while todo:
            for nxt in edges.get(todo.pop(), set()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    pending = states("pending")
    assert reachable(pending) == set(states)
    for state in states:
        assert pending in reachable(state)


def test_a_retry_undoes_only_its_own_stages_failure() -> None:
    """The collage retry cannot revive a download failure (and the other way round)."""
    with pytest.raises(IllegalTransitionError, match="undoes 'collage_failed'"):
        next_image_status(
            ImageStatus.ERROR, ImageEvent.RETRY_COLLAGE, last_failure=ImageEvent.DOWNLOAD_FAILED
        )
    assert (
        next_image_status(
            ImageStatus.ERROR, ImageEvent.RETRY_DOWNLOAD, last_failure=ImageEvent.DOWNLOAD_FAILED
        )
        is ImageStatus.PENDING
    )


def test_illegal_event_names_both_state_and_event() -> None:
    """Applying an event the state does not allow raises with a readable message."""
    with pytest.raises(
        IllegalTransitionError, match="'collage_stored' is not allowed in state 'pending'"
    ):
        next_image_status(ImageStatus.PENDING, ImageEvent.COLLAGE_STORED)


def test_document_happy_paths() -> None:
    """The document's paths: pending→uploaded→collage_ready, pending→partial→synced, skipped."""
    assert next_image_status(ImageStatus.PENDING, ImageEvent.PHOTOS_STORED) is ImageStatus.UPLOADED
    assert (
        next_image_status(ImageStatus.UPLOADED, ImageEvent.COLLAGE_STORED)
        is ImageStatus.COLLAGE_READY
    )
    partial = next_ximilar_status(XimilarStatus.PENDING, XimilarEvent.SOME_SYNCED)
    assert partial is XimilarStatus.PARTIAL
    assert next_ximilar_status(partial, XimilarEvent.ALL_SYNCED) is XimilarStatus.SYNCED
    assert next_sync_status(SyncStatus.PENDING, SyncEvent.FAILED_VERIFICATION) is SyncStatus.SKIPPED
