"""Frozen models the stages pass around. No wire format lives here."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import attrs

from undecat.domain.status import ImageStatus, SyncStatus, XimilarStatus

__all__ = [
    "BRANDS",
    "AvailabilityRecord",
    "Claim",
    "PollTarget",
    "Product",
    "ProductDraft",
    "RunCounts",
    "RunItems",
    "RunLog",
    "RunResult",
    "SizeInStock",
    "StatusCount",
    "Store",
    "UpsertResult",
    "source_for",
]

#: The six Inditex brands, by slug. The Apify source of a brand is ``apify_{slug}``.
BRANDS: tuple[str, ...] = (
    "zara",
    "bershka",
    "pullandbear",
    "stradivarius",
    "massimodutti",
    "oysho",
)


def source_for(brand: str) -> str:
    """Return the ``raw_products.source`` value of a brand's Apify collection."""
    return f"apify_{brand}"


@attrs.frozen
class ProductDraft:
    """A product as the catalog source describes it, before it is stored."""

    source: str
    external_id: str
    brand: str
    name: str
    description: str | None
    price: Decimal | None
    currency: str
    category: str | None
    colour: str | None
    sizes: tuple[str, ...]
    composition: str | None
    original_image_urls: tuple[str, ...]
    #: The whole item as decoded, or None when the mapper read it straight from its JSON
    #: bytes (then ``raw_json`` holds it; one of the two is always set).
    raw_data: dict[str, Any] | None = attrs.field(eq=False, repr=False)
    #: The item as UTF-8 JSON, ready for the store (encoded or received once per item: the
    #: size cap and the store both use it), or None to have the store encode ``raw_data``.
    raw_json: bytes | None = attrs.field(default=None, eq=False, repr=False, kw_only=True)

    def __attrs_post_init__(self) -> None:
        if self.raw_data is None and self.raw_json is None:
            raise ValueError("a ProductDraft needs raw_data or raw_json: the item it came from")


@attrs.frozen
class UpsertResult:
    """What an upsert of a batch of drafts changed."""

    new: int = 0
    updated: int = 0
    unchanged: int = 0
    photos_changed: int = 0

    def __add__(self, other: UpsertResult) -> UpsertResult:
        return UpsertResult(
            new=self.new + other.new,
            updated=self.updated + other.updated,
            unchanged=self.unchanged + other.unchanged,
            photos_changed=self.photos_changed + other.photos_changed,
        )


@attrs.frozen
class Product:
    """A stored ``raw_products`` row, as the stages read it."""

    id: int
    source: str
    external_id: str
    brand: str
    name: str | None
    category: str | None
    price: Decimal | None
    original_image_urls: tuple[str, ...]
    image_urls: tuple[str, ...]
    collage_url: str | None
    image_status: ImageStatus
    ximilar_status: XimilarStatus
    sync_status: SyncStatus
    index_scope: str
    ximilar_synced_urls: tuple[str, ...]
    ximilar_target_count: int
    error_message: str | None = None
    delisted_at: datetime | None = None
    # The _id of every record the Ximilar collection holds for this product.
    ximilar_record_ids: tuple[str, ...] = ()


@attrs.frozen
class Claim:
    """A product leased to one worker for one stage.

    Only the holder of ``owner`` with this ``token`` may complete, fail, extend or release
    it; ``attempt`` counts from 1. ``token`` is the stage's claim counter of the row when it
    was claimed: a later claim of the same row (after this lease lapsed) has another, so a
    stale worker cannot write over it, even under the same owner name.
    """

    stage: str
    owner: str
    attempt: int
    lease_until: datetime
    product: Product
    token: int = 0


@attrs.frozen
class Store:
    """A physical store of a brand (``raw_stores``)."""

    brand: str
    store_id: int
    name: str | None = None
    address: str | None = None
    city: str = "Dubai"
    country: str = "AE"
    mall_name: str | None = None
    latitude: Decimal | None = None
    longitude: Decimal | None = None


@attrs.frozen(order=True)
class SizeInStock:
    """One size of one colour a store has in stock (``stock`` None when not given)."""

    colour: str
    size: str
    stock: int | None = attrs.field(default=None, order=False)


@attrs.frozen
class AvailabilityRecord:
    """What one store had in stock of one product (all its colours) at ``fetched_at``.

    ``product_id`` is ``raw_products.external_id``; an empty ``sizes_in_stock`` means the
    store was polled and has nothing in stock.
    """

    brand: str
    store_id: int
    product_id: str
    sizes_in_stock: tuple[SizeInStock, ...]
    fetched_at: datetime

    @property
    def day(self) -> date:
        """The UTC day the record belongs to (one row per store, product and day)."""
        return self.fetched_at.astimezone(UTC).date()


@attrs.frozen
class PollTarget:
    """An active product to poll, with the colour product ids the stock endpoint knows."""

    brand: str
    external_id: str
    colours: tuple[tuple[str, str], ...]  # (colour code, colour product id), at least one


@attrs.frozen
class RunItems:
    """How a run's items ended, for the run log's readers and the metrics."""

    done: int
    failed: int
    skipped: int


class RunCounts:
    """The counts one run keeps: the one counter type of every job (thread-safe).

    ``taken`` items were claimed or fetched; each ends ``done``, ``failed`` or ``skipped``
    (given back or passed over). A job declares its own further counts by name
    (:meth:`of`), as they appear in its ``scraper_logs`` metadata; the items of those
    declared ``skipping`` are skipped too (a lost lease, a claim given back). Adding a
    name not declared is a KeyError, so a misspelled counter fails its test instead of
    staying zero.
    """

    __slots__ = ("_lock", "_skipping", "detail", "done", "failed", "skipped", "taken")

    def __init__(self, detail: dict[str, int], skipping: frozenset[str]) -> None:
        self.taken = self.done = self.failed = self.skipped = 0
        self.detail = detail
        self._skipping = skipping
        self._lock = threading.Lock()

    @classmethod
    def of(cls, *names: str, skipping: tuple[str, ...] = ()) -> RunCounts:
        """Counts with the further counters ``names`` (and ``skipping``), all zero."""
        return cls(dict.fromkeys((*names, *skipping), 0), frozenset(skipping))

    def __repr__(self) -> str:
        return (
            f"RunCounts(taken={self.taken}, done={self.done}, failed={self.failed},"
            f" skipped={self.skipped}, {self.detail})"
        )

    def add(self, **counts: int) -> None:
        """Add to ``taken``, ``done``, ``failed``, ``skipped`` or a declared counter."""
        with self._lock:
            for name, value in counts.items():
                if name in _COMMON:
                    setattr(self, name, getattr(self, name) + value)
                    continue
                if name not in self.detail:
                    raise KeyError(f"{name!r} is not a counter of this run: {sorted(self.detail)}")
                self.detail[name] += value

    def __getitem__(self, name: str) -> int:
        """A declared counter's value."""
        return self.detail[name]

    def items(self) -> RunItems:
        """How the run's items ended: ``skipped`` adds the counters declared as skipping."""
        with self._lock:
            skipped = self.skipped + sum(self.detail[name] for name in self._skipping)
            return RunItems(done=self.done, failed=self.failed, skipped=skipped)


_COMMON = frozenset({"taken", "done", "failed", "skipped"})


@attrs.frozen
class RunResult:
    """The outcome of one job run, written to ``scraper_logs``.

    ``items`` is what the metrics show of it; a run without counts of its own (a requeue,
    a clean-up) leaves it None and the report derives it from the columns.
    """

    status: str  # 'success' | 'failed' | 'partial' ... see domain.status.RunStatus
    records_fetched: int = 0
    records_new: int = 0
    records_updated: int = 0
    records_errors: int = 0
    error_message: str | None = None
    metadata: dict[str, Any] = attrs.field(factory=dict)
    run_id: str | None = None
    items: RunItems | None = None


@attrs.frozen
class RunLog:
    """A stored ``scraper_logs`` row."""

    id: int
    scraper_name: str
    status: str
    started_at: datetime
    completed_at: datetime | None
    duration_seconds: int | None
    records_fetched: int
    records_new: int
    records_updated: int
    records_errors: int
    error_message: str | None
    metadata: dict[str, Any] | None
    run_id: str | None


@attrs.frozen
class StatusCount:
    """How many products of a brand stand in one combination of statuses."""

    brand: str
    image_status: str
    ximilar_status: str
    sync_status: str
    count: int
