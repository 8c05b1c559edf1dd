"""Availability rules: what a store's answer becomes, and how a run backs off when blocked.

No wire format lives here: the Zara adapter hands over :class:`~undecat.domain.models.SizeInStock`
values per store, and these functions turn them into the rows of ``raw_availability``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from undecat.domain.models import AvailabilityRecord, PollTarget, SizeInStock

__all__ = [
    "MAX_STORES_PER_REQUEST",
    "block_wait",
    "records_for",
    "sizes_json",
    "store_chunks",
]

#: Store ids sent in one stock request; more are split into several requests.
MAX_STORES_PER_REQUEST = 20


def sizes_json(sizes: Iterable[SizeInStock]) -> list[dict[str, Any]]:
    """The ``sizes_in_stock`` JSON of a row: one object per colour and size, sorted, deduplicated.

    Sizes with a stock of zero (or less) are not in stock and are left out. When the same
    (colour, size) appears twice the larger stock wins (an unknown stock counts as in stock).
    """
    best: dict[tuple[str, str], int | None] = {}
    for item in sizes:
        if item.stock is not None and item.stock <= 0:
            continue
        key = (item.colour, item.size)
        if key not in best:
            best[key] = item.stock
        else:
            held = best[key]
            if held is not None and (item.stock is None or item.stock > held):
                best[key] = item.stock
    return [
        {"colour": colour, "size": size, "stock": best[colour, size]}
        for colour, size in sorted(best)
    ]


def records_for(
    target: PollTarget,
    store_ids: Sequence[int],
    answers: Mapping[str, Mapping[int, Sequence[SizeInStock]]],
    fetched_at: datetime,
) -> list[AvailabilityRecord]:
    """One record per polled store for ``target``, merging the answers of all its colours.

    ``answers`` maps each colour code to the sizes each store reported; a store missing from
    an answer has nothing of that colour, so every polled store gets a record (maybe empty).
    """
    records = []
    for store_id in store_ids:
        merged: list[SizeInStock] = []
        for colour, per_store in answers.items():
            merged.extend(
                SizeInStock(colour=colour, size=s.size, stock=s.stock)
                for s in per_store.get(store_id, ())
            )
        kept = tuple(
            SizeInStock(colour=d["colour"], size=d["size"], stock=d["stock"])
            for d in sizes_json(merged)
        )
        records.append(
            AvailabilityRecord(
                brand=target.brand,
                store_id=store_id,
                product_id=target.external_id,
                sizes_in_stock=kept,
                fetched_at=fetched_at,
            )
        )
    return records


def store_chunks(store_ids: Sequence[int]) -> list[tuple[int, ...]]:
    """Split the polled stores into requests of at most :data:`MAX_STORES_PER_REQUEST`."""
    ids = tuple(dict.fromkeys(store_ids))
    return [
        ids[start : start + MAX_STORES_PER_REQUEST]
        for start in range(0, len(ids), MAX_STORES_PER_REQUEST)
    ]


def block_wait(blocks_in_a_row: int, base: float) -> float:
    """Seconds to wait after the n-th anti-bot block in a row: ``base``, doubling each time."""
    if blocks_in_a_row < 1:
        return 0.0
    return float(base * 2 ** (blocks_in_a_row - 1))
