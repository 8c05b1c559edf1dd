"""The pure Ximilar selection: what is sent, what is stale, what status follows."""

from __future__ import annotations

from datetime import UTC, datetime

import attrs
from hypothesis import given
from hypothesis import strategies as st

from tests.strategies import pilot_products
from undecat.domain.models import Product
from undecat.domain.stages import XimilarProgress
from undecat.domain.status import XimilarStatus
from undecat.domain.ximilar import chunked, photo_slots, plan_sync, record_id, settle


def _apply(product: Product, progress: XimilarProgress) -> Product:
    return attrs.evolve(
        product,
        ximilar_synced_urls=progress.synced_urls,
        ximilar_record_ids=progress.record_ids,
        ximilar_status=progress.status,
    )


def _synced(product: Product) -> Product:
    plan = plan_sync(product)
    return _apply(product, settle(plan, {r.record_id for r in plan.to_insert}, set()))


@given(pilot_products())
def test_a_new_product_sends_its_first_target_photos_with_document_metadata(
    product: Product,
) -> None:
    """The first ximilar_target_count photos go out, with sku_id/brand/name/category/price only."""
    plan = plan_sync(product)
    wanted = product.image_urls[: product.ximilar_target_count]
    assert [r.url for r in plan.to_insert] == list(wanted)
    assert plan.stale_ids == ()
    for record in plan.to_insert:
        metadata = dict(record.metadata)
        assert set(metadata) <= {"sku_id", "brand", "name", "category", "price"}
        assert metadata["sku_id"] == product.external_id
        assert metadata["brand"] == product.brand
        assert metadata.get("price") == (None if product.price is None else str(product.price))
        assert record.fields()["_id"] == record.record_id
        assert record.fields()["_url"] == record.url


@given(pilot_products())
def test_once_everything_is_confirmed_the_product_is_synced_and_nothing_is_resent(
    product: Product,
) -> None:
    """All wanted records confirmed: synced, synced_urls are the wanted photos, a rerun sends 0."""
    after = _synced(product)
    assert after.ximilar_status == XimilarStatus.SYNCED
    assert after.ximilar_synced_urls == product.image_urls[: product.ximilar_target_count]
    again = plan_sync(after)
    assert again.to_insert == ()
    assert again.stale_ids == ()


@given(pilot_products(), st.data())
def test_only_confirmed_records_count(product: Product, data: st.DataObject) -> None:
    """Confirming a subset gives partial unless the subset is everything, and lists only it."""
    plan = plan_sync(product)
    ids = [r.record_id for r in plan.to_insert]
    confirmed = set(data.draw(st.lists(st.sampled_from(ids), unique=True) if ids else st.just([])))
    progress = settle(plan, confirmed, set())
    expected = [r.url for r in plan.to_insert if r.record_id in confirmed]
    assert list(progress.synced_urls) == expected
    assert set(progress.record_ids) == confirmed
    full = confirmed == set(ids)
    assert progress.status == (XimilarStatus.SYNCED if full else XimilarStatus.PARTIAL)
    # The next run sends exactly what is missing.
    retry = plan_sync(_apply(product, progress))
    assert {r.record_id for r in retry.to_insert} == set(ids) - confirmed


@given(pilot_products(), st.integers(min_value=1, max_value=4))
def test_raising_the_target_sends_only_the_extra_photos(product: Product, extra: int) -> None:
    """Progressive ingestion: a target raised by k sends photos target..target+k-1, no others."""
    after = _synced(product)
    raised = attrs.evolve(
        after,
        ximilar_target_count=product.ximilar_target_count + extra,
        ximilar_status=XimilarStatus.PARTIAL,  # what migration 0005 does to a synced row
    )
    plan = plan_sync(raised)
    start = product.ximilar_target_count
    assert [r.url for r in plan.to_insert] == list(product.image_urls[start : start + extra])
    assert plan.stale_ids == ()


@given(pilot_products(), st.integers(min_value=0, max_value=3))
def test_lowering_the_target_never_deletes_good_records(product: Product, drop: int) -> None:
    """Records of current photos beyond a lowered target are kept, and the product is synced."""
    after = _synced(product)
    lowered = attrs.evolve(
        after,
        ximilar_target_count=max(0, product.ximilar_target_count - drop),
        ximilar_status=XimilarStatus.PARTIAL,  # back in the queue for another reason
    )
    plan = plan_sync(lowered)
    assert plan.to_insert == ()
    assert plan.stale_ids == ()
    assert settle(plan, set(), set()).synced_urls == after.ximilar_synced_urls


@given(pilot_products(max_photos=5), st.data())
def test_changed_photos_replace_their_stale_records_and_keep_the_rest(
    product: Product, data: st.DataObject
) -> None:
    """After a re-collect, records of changed photos are stale; unchanged ones are not re-sent."""
    after = _synced(product)
    count = len(product.original_image_urls)
    changed = set(data.draw(st.lists(st.integers(0, max(count - 1, 0)), unique=True)))
    changed &= set(range(count))
    sources = tuple(
        f"{url}?v=new" if n in changed else url for n, url in enumerate(after.original_image_urls)
    )
    # What the trigger of migration 0002 leaves (record ids kept), after the re-download.
    recollected = attrs.evolve(
        after,
        original_image_urls=sources,
        ximilar_synced_urls=(),
        ximilar_status=XimilarStatus.PENDING,
    )
    plan = plan_sync(recollected)
    target = product.ximilar_target_count
    old = {s.index: s.record_id for s in photo_slots(after)}
    assert set(plan.stale_ids) == {old[n] for n in changed if n < target}
    assert [r.url for r in plan.to_insert] == [
        url for n, url in enumerate(product.image_urls[:target]) if n in changed
    ]
    done = settle(plan, {r.record_id for r in plan.to_insert}, set(plan.stale_ids))
    assert done.status == XimilarStatus.SYNCED
    assert done.synced_urls == product.image_urls[:target]
    assert not set(done.record_ids) & set(plan.stale_ids)


@given(pilot_products(), st.booleans())
def test_a_delisted_product_has_every_record_deleted(product: Product, confirmed: bool) -> None:
    """Delisting removes every known record; unconfirmed deletions stay listed for next time."""
    after = _synced(product)
    gone = attrs.evolve(after, delisted_at=datetime(2025, 1, 1, tzinfo=UTC))
    plan = plan_sync(gone)
    assert plan.to_insert == ()
    assert set(plan.stale_ids) == set(after.ximilar_record_ids)
    progress = settle(plan, set(), set(plan.stale_ids) if confirmed else set())
    assert progress.status == XimilarStatus.PENDING
    assert progress.synced_urls == ()
    assert progress.record_ids == (() if confirmed else plan.stale_ids)


@given(pilot_products())
def test_urls_synced_before_ids_were_kept_are_never_resent(product: Product) -> None:
    """A row synced by the old system (URLs listed, no record ids) sends none of those URLs."""
    legacy = attrs.evolve(product, ximilar_synced_urls=product.image_urls[:1])
    plan = plan_sync(legacy)
    assert not {r.url for r in plan.to_insert} & set(product.image_urls[:1])
    assert settle(plan, set(), set()).synced_urls == product.image_urls[:1]


@given(
    st.text(min_size=1, max_size=8),
    st.text(min_size=1, max_size=8),
    st.integers(0, 9),
    st.text(max_size=30),
    st.text(max_size=30),
)
def test_record_ids_are_deterministic_and_follow_the_source_photo(
    brand: str, external_id: str, index: int, url: str, other: str
) -> None:
    """The same photo always has the same _id; another source URL or index has another."""
    rid = record_id(brand, external_id, index, url)
    assert rid == record_id(brand, external_id, index, url)
    assert (rid == record_id(brand, external_id, index, other)) == (url == other)
    assert rid != record_id(brand, external_id, index + 1, url)


@given(st.lists(st.integers(), max_size=45), st.integers(1, 12))
def test_chunks_keep_order_and_size(items: list[int], size: int) -> None:
    """Chunks are at most ``size`` long and concatenate back to the input."""
    parts = chunked(items, size)
    assert all(1 <= len(p) <= size for p in parts)
    assert [x for p in parts for x in p] == items
