"""The pure rules of availability and of the production verification, as properties."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from undecat.adapters.postgres.availability import availability_document, latest_per_day
from undecat.domain.availability import (
    MAX_STORES_PER_REQUEST,
    block_wait,
    records_for,
    sizes_json,
    store_chunks,
)
from undecat.domain.models import AvailabilityRecord, PollTarget, SizeInStock
from undecat.domain.production import CatalogEntry, Verdict, verify

sizes = st.lists(
    st.builds(
        SizeInStock,
        colour=st.sampled_from(["800", "401", "250"]),
        size=st.sampled_from(["XS", "S", "M", "L", "XL", "38", "40"]),
        stock=st.none() | st.integers(-2, 20),
    ),
    max_size=30,
)


@given(sizes)
def test_sizes_json_is_sorted_unique_and_in_stock_only(items: list[SizeInStock]) -> None:
    """One object per (colour, size), sorted, no stock <= 0, and stable when applied twice."""
    out = sizes_json(items)
    keys = [(d["colour"], d["size"]) for d in out]
    assert keys == sorted(set(keys))
    assert all(d["stock"] is None or d["stock"] > 0 for d in out)
    again = sizes_json(SizeInStock(d["colour"], d["size"], d["stock"]) for d in out)
    assert again == out
    in_stock = {(i.colour, i.size) for i in items if i.stock is None or i.stock > 0}
    assert set(keys) == in_stock


@given(st.lists(st.integers(1, 60), max_size=70))
def test_store_chunks_keep_every_store_once_twenty_at_most(stores: list[int]) -> None:
    """Chunks hold each store once, in order, at most 20 each."""
    chunks = store_chunks(stores)
    assert [s for chunk in chunks for s in chunk] == list(dict.fromkeys(stores))
    assert all(0 < len(chunk) <= MAX_STORES_PER_REQUEST for chunk in chunks)


@given(st.integers(1, 10), st.floats(0, 100))
def test_block_waits_double(blocks: int, base: float) -> None:
    """The n-th block in a row waits base * 2^(n-1)."""
    assert block_wait(blocks, base) == pytest.approx(base * 2 ** (blocks - 1))
    assert block_wait(0, base) == 0.0


@given(
    st.lists(st.integers(1, 9), min_size=1, max_size=6, unique=True),
    st.dictionaries(
        st.sampled_from(["800", "401"]),
        st.dictionaries(st.integers(1, 12), sizes.map(tuple), max_size=4),
        max_size=2,
    ),
)
def test_every_polled_store_gets_one_record(
    stores: list[int], answers: dict[str, dict[int, tuple[SizeInStock, ...]]]
) -> None:
    """One record per polled store; stores no answer mentions have an empty one."""
    when = datetime(2026, 12, 1, 23, 30, tzinfo=UTC)
    target = PollTarget("zara", "1", (("800", "11"), ("401", "12")))
    records = records_for(target, stores, answers, when)
    assert [r.store_id for r in records] == stores
    for record in records:
        mentioned = any(record.store_id in per_store for per_store in answers.values())
        if not mentioned:
            assert record.sizes_in_stock == ()
        assert all(s.colour in answers for s in record.sizes_in_stock)
        assert record.day == when.date()


def entry(**changes: object) -> CatalogEntry:
    """A ready product, fields overridable."""
    fields: dict[str, object] = {
        "staging_id": 1,
        "source": "apify_zara",
        "brand": "zara",
        "external_id": "1",
        "name": "Shirt",
        "description": None,
        "price": Decimal("99.90"),
        "currency": "AED",
        "category": None,
        "colour": None,
        "sizes": [],
        "composition": None,
        "image_urls": (),
        "collage_url": "http://c/1.jpg",
        "ximilar_record_ids": (),
        "index_scope": "off",
        "image_status": "collage_ready",
    }
    fields.update(changes)
    return CatalogEntry(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "verdict", "reason"),
    [
        ({}, Verdict.READY, None),
        ({"image_status": "uploaded"}, Verdict.NOT_READY, None),
        ({"image_status": "pending", "collage_url": None}, Verdict.NOT_READY, None),
        ({"image_status": "error"}, Verdict.SKIP, "image_status error"),
        ({"name": "  "}, Verdict.SKIP, "no name"),
        ({"price": None}, Verdict.SKIP, "no price"),
        ({"price": Decimal("-1")}, Verdict.SKIP, "price -1 is not positive"),
        ({"currency": ""}, Verdict.SKIP, "no currency"),
        (
            {"delisted_at": datetime(2026, 1, 1, tzinfo=UTC), "price": None},
            Verdict.DELISTED,
            None,
        ),
    ],
)
def test_verification_rule(
    changes: dict[str, object], verdict: Verdict, reason: str | None
) -> None:
    """Each staging state gets the documented verdict (docs/production.md)."""
    result = verify(entry(**changes))
    assert result.verdict is verdict
    if reason is None:
        assert result.reason is None
    else:
        assert result.reason is not None
        assert reason in result.reason


@given(
    st.lists(
        st.builds(
            AvailabilityRecord,
            brand=st.sampled_from(["zara", "oysho"]),
            store_id=st.integers(1, 5),
            product_id=st.text(min_size=1, max_size=8),
            sizes_in_stock=sizes.map(tuple),
            fetched_at=st.datetimes(
                min_value=datetime(2026, 1, 1),  # noqa: DTZ001  # naive bounds are what st.datetimes takes
                max_value=datetime(2026, 1, 3),  # noqa: DTZ001
                timezones=st.just(UTC),
            ),
        ),
        max_size=20,
    )
)
def test_the_availability_document_round_trips(records: list[AvailabilityRecord]) -> None:
    """The JSON document sent to the database decodes to the latest record per key and day."""
    document = json.loads(availability_document(records))
    expected = latest_per_day(records)
    assert [(d["b"], d["s"], d["p"]) for d in document] == [
        (r.brand, r.store_id, r.product_id) for r in expected
    ]
    assert [d["j"] for d in document] == [sizes_json(r.sizes_in_stock) for r in expected]
    assert [datetime.fromisoformat(d["f"]) for d in document] == [r.fetched_at for r in expected]
    keys = [(r.brand, r.store_id, r.product_id, r.day) for r in expected]
    assert len(keys) == len(set(keys))
