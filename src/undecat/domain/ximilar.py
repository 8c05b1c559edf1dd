"""What to send to the Ximilar collection, and what a product's records should become.

Pure rules, no I/O. The source document's selection (section 4): a pilot product sends the
first ``ximilar_target_count`` photos of ``image_urls`` that the collection does not hold
yet, with the metadata sku_id, brand, name, category and price (as a string) and no store
data; it is ``synced`` once every one of those photos is in, ``partial`` before.

Each record's ``_id`` is derived from the brand, the external id, the photo's position and
the photo's *source* URL (``original_image_urls``), never from the S3 URL alone: a
re-download after a re-collect writes the new photo to the same S3 key, so only the source
URL tells a stale record from a current one. A record whose ``_id`` matches none of the
product's current photos is stale and is deleted; a record that matches a current photo is
kept even beyond the target (lowering the target never deletes good records, raising it
sends only the extra photos).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import TypeVar

import attrs

from undecat.domain.models import Product
from undecat.domain.stages import XimilarProgress
from undecat.domain.status import XimilarEvent, XimilarStatus, next_ximilar_status

__all__ = [
    "MAX_RECORDS_PER_REQUEST",
    "Confirmed",
    "PhotoSlot",
    "SyncPlan",
    "XimilarRecord",
    "chunked",
    "photo_slots",
    "plan_sync",
    "record_id",
    "record_metadata",
    "settle",
]

#: Ximilar's documented ceiling of records per insert request; used for every method.
MAX_RECORDS_PER_REQUEST = 10

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_T = TypeVar("_T")


def record_id(brand: str, external_id: str, index: int, source_url: str) -> str:
    """Return the deterministic ``_id`` of photo ``index`` (0-based) taken from ``source_url``.

    Readable prefix (brand, external id, position) for humans; the digest covers all four
    parts, so ids stay distinct even when the prefix had to be sanitised.
    """
    digest = hashlib.sha256(
        "\n".join((brand, external_id, str(index), source_url)).encode()
    ).hexdigest()[:16]
    return f"{_UNSAFE.sub('_', brand)}-{_UNSAFE.sub('_', external_id)}-{index}-{digest}"


@attrs.frozen
class PhotoSlot:
    """One of a product's current photos and the ``_id`` its record has."""

    index: int
    url: str  # the public S3 URL Ximilar fetches (``image_urls``)
    record_id: str


def photo_slots(product: Product) -> tuple[PhotoSlot, ...]:
    """Return every current photo of ``product`` with its record id, in photo order.

    ``image_urls[n]`` is the stored copy of ``original_image_urls[n]``; should the source
    list be shorter (it never is when the downloader wrote the row), the stored URL stands
    in for the source.
    """
    sources = product.original_image_urls
    return tuple(
        PhotoSlot(
            index=n,
            url=url,
            record_id=record_id(
                product.brand, product.external_id, n, sources[n] if n < len(sources) else url
            ),
        )
        for n, url in enumerate(product.image_urls)
    )


@attrs.frozen
class XimilarRecord:
    """One record for the collection: its ``_id``, the photo URL and the metadata fields."""

    record_id: str
    url: str
    metadata: tuple[tuple[str, str], ...]

    def fields(self) -> dict[str, str]:
        """Return the record as Ximilar's flat field mapping: ``_id``, ``_url``, metadata."""
        return {"_id": self.record_id, "_url": self.url, **dict(self.metadata)}


class Confirmed(set[str]):
    """The record ids an index confirmed, and why each other id of the call was not.

    A plain ``set`` to the :class:`~undecat.ports.VisualIndex` port; ``reasons`` maps an
    id the index explicitly refused (a bad photo URL, a rejected record) to a readable
    reason. An id in neither was simply not confirmed.
    """

    def __init__(self, ids: Iterable[str] = (), reasons: Mapping[str, str] | None = None) -> None:
        super().__init__(ids)
        self.reasons: dict[str, str] = dict(reasons or {})


def record_metadata(product: Product) -> tuple[tuple[str, str], ...]:
    """Return the document's metadata of ``product``: sku_id, brand, name, category, price.

    No store or floor data (the document's v5.1 rule). Fields the product lacks are left
    out rather than sent as the string ``"None"``.
    """
    fields = {
        "sku_id": product.external_id,
        "brand": product.brand,
        "name": product.name,
        "category": product.category,
        "price": None if product.price is None else str(product.price),
    }
    return tuple((k, v) for k, v in fields.items() if v is not None)


@attrs.frozen
class SyncPlan:
    """What one product needs from the collection in this run."""

    product_id: int
    external_id: str
    state: XimilarStatus
    removal: bool  # delisted: every record goes, nothing is inserted
    current: tuple[PhotoSlot, ...]  # every current photo
    wanted: tuple[PhotoSlot, ...]  # the first ``target`` photos
    held: frozenset[str]  # record ids of current photos the collection already holds
    untracked: tuple[str, ...]  # URLs synced before record ids were kept (never re-sent)
    to_insert: tuple[XimilarRecord, ...]
    stale_ids: tuple[str, ...]  # held records matching no current photo: to delete

    @property
    def touched_ids(self) -> tuple[str, ...]:
        """Every record id this plan may send a request about."""
        return tuple(r.record_id for r in self.to_insert) + self.stale_ids


def plan_sync(product: Product) -> SyncPlan:
    """Return what ``product`` needs: records to insert, stale records to delete.

    A delisted product (``delisted_at`` set) has every known record deleted. Otherwise the
    first ``ximilar_target_count`` photos are wanted; one counts as in when its record id
    is among ``ximilar_record_ids``, or (for rows synced before ids were kept) when its URL
    is in ``ximilar_synced_urls`` -- the document's rule, so such photos are never re-sent.
    """
    known = tuple(dict.fromkeys(product.ximilar_record_ids))
    if product.delisted_at is not None:
        return SyncPlan(
            product_id=product.id,
            external_id=product.external_id,
            state=product.ximilar_status,
            removal=True,
            current=(),
            wanted=(),
            held=frozenset(),
            untracked=(),
            to_insert=(),
            stale_ids=known,
        )
    current = photo_slots(product)
    current_ids = {slot.record_id for slot in current}
    held = frozenset(known) & current_ids
    synced = set(product.ximilar_synced_urls)
    wanted = current[: max(product.ximilar_target_count, 0)]
    untracked = tuple(
        slot.url for slot in current if slot.record_id not in held and slot.url in synced
    )
    metadata = record_metadata(product)
    to_insert = tuple(
        XimilarRecord(record_id=slot.record_id, url=slot.url, metadata=metadata)
        for slot in wanted
        if slot.record_id not in held and slot.url not in untracked
    )
    return SyncPlan(
        product_id=product.id,
        external_id=product.external_id,
        state=product.ximilar_status,
        removal=False,
        current=current,
        wanted=wanted,
        held=held,
        untracked=untracked,
        to_insert=to_insert,
        stale_ids=tuple(rid for rid in known if rid not in current_ids),
    )


def settle(plan: SyncPlan, inserted: Collection[str], deleted: Collection[str]) -> XimilarProgress:
    """Return what to write once the collection confirmed ``inserted`` and ``deleted``.

    Only confirmed records count: ``synced_urls`` lists the current photos whose record the
    collection holds (in photo order), ``record_ids`` every record it still holds for the
    product -- including stale ones whose deletion was not confirmed, so they are deleted
    on a later run. ``synced`` needs every wanted photo in and nothing stale left.
    """
    present = set(plan.held) | (set(inserted) & {r.record_id for r in plan.to_insert})
    leftover = tuple(rid for rid in plan.stale_ids if rid not in deleted)
    if plan.removal:
        status = next_ximilar_status(plan.state, XimilarEvent.REMOVED)
        return XimilarProgress(synced_urls=(), record_ids=leftover, status=status)
    untracked = set(plan.untracked)
    synced_urls = tuple(
        slot.url for slot in plan.current if slot.record_id in present or slot.url in untracked
    )
    record_ids = tuple(s.record_id for s in plan.current if s.record_id in present) + leftover
    complete = not leftover and all(
        slot.record_id in present or slot.url in untracked for slot in plan.wanted
    )
    event = XimilarEvent.ALL_SYNCED if complete else XimilarEvent.SOME_SYNCED
    return XimilarProgress(
        synced_urls=synced_urls,
        record_ids=record_ids,
        status=next_ximilar_status(plan.state, event),
    )


def chunked(items: Sequence[_T], size: int = MAX_RECORDS_PER_REQUEST) -> list[Sequence[_T]]:
    """Split ``items`` into consecutive requests of at most ``size``."""
    if size < 1:
        raise ValueError("size must be at least 1")
    return [items[i : i + size] for i in range(0, len(items), size)]
