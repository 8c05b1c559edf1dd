"""The ports: what the jobs need from the outside world, as ``typing.Protocol`` classes.

Adapters (``undecat.adapters``) and test fakes satisfy these structurally; none inherits.
Every method raises only :class:`~undecat.errors.UndecatError` subclasses: an
:class:`~undecat.errors.OutageError` when the dependency is down, a
:class:`~undecat.errors.ProductError` when one product's data is at fault.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any, Protocol

import attrs

from undecat.domain.keys import MediaItem, MediaKind
from undecat.domain.models import (
    AvailabilityRecord,
    Claim,
    PollTarget,
    ProductDraft,
    RunLog,
    RunResult,
    SizeInStock,
    StatusCount,
    Store,
    UpsertResult,
)
from undecat.domain.production import CatalogEntry
from undecat.domain.report import QueueDepth, Report
from undecat.domain.stages import Outcome, QueueCounts, Stage
from undecat.domain.user_media import CheckedPair, IndexedObject, KindUsage

__all__ = [
    "AvailabilitySource",
    "AvailabilityStore",
    "BuildCollage",
    "CatalogRun",
    "CatalogSource",
    "CatalogStore",
    "Clock",
    "DelistedObjects",
    "FetchedPhoto",
    "MediaChecker",
    "MediaIndex",
    "MediaObjects",
    "Metrics",
    "ObjectStore",
    "OpsReport",
    "PhotoFetcher",
    "PhotoPreparer",
    "PreparedPhoto",
    "ProductionCatalog",
    "RetentionStore",
    "RunRecorder",
    "RunningLog",
    "StatusReport",
    "StoreLocator",
    "SyncSource",
    "VisualIndex",
    "WorkQueue",
    "XimilarLedger",
]


class Clock(Protocol):
    """Wall time, a monotonic timer and sleeping; tests inject one that records sleeps."""

    def now(self) -> datetime:
        """Return the current time, timezone-aware (UTC)."""
        ...

    def monotonic(self) -> float:
        """Return seconds from an arbitrary origin that never goes backwards."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""
        ...


class CatalogStore(Protocol):
    """Where collected catalog items land (``raw_products``), for the collect stage."""

    def upsert_products(self, drafts: Sequence[ProductDraft], scraped_at: datetime) -> UpsertResult:
        """Insert or refresh products on ``(source, external_id)``, change-aware.

        Changed photo URLs send the row back to ``image_status='pending'`` and reset every
        downstream state; changed metadata only sends ``sync_status`` back to ``pending``;
        an unchanged item moves no status. ``scraped_at`` is stamped on every row given.
        """
        ...

    def count_active(self, source: str) -> int:
        """Return how many products of ``source`` are not delisted."""
        ...

    def delist_missing(self, source: str, seen_since: datetime) -> int:
        """Mark delisted the active products of ``source`` not scraped since ``seen_since``."""
        ...


class WorkQueue(Protocol):
    """Leased work of one stage over ``raw_products`` (``FOR UPDATE SKIP LOCKED`` + lease)."""

    stage: Stage

    def claim(self, owner: str, limit: int, lease: timedelta) -> list[Claim]:
        """Lease up to ``limit`` eligible products to ``owner`` for ``lease``."""
        ...

    def extend(self, claims: Sequence[Claim], lease: timedelta) -> int:
        """Push the lease of claims still held out to now + ``lease``; return how many."""
        ...

    def complete(self, claim: Claim, outcome: Outcome) -> bool:
        """Write the stage's result; False (and nothing written) if the lease was lost."""
        ...

    def fail(self, claim: Claim, message: str) -> bool:
        """Mark the product ``error`` for this stage with a readable message."""
        ...

    def complete_many(self, done: Sequence[tuple[Claim, Outcome]]) -> list[bool]:
        """:meth:`complete` for many claims at a cost that does not grow with their number.

        Each item is written only while its claim still holds the lease (owner and token);
        the answer says, item by item, whether it was. Items act as if written in order: a
        claim given twice is written by its first item only.
        """
        ...

    def fail_many(self, failed: Sequence[tuple[Claim, str]]) -> list[bool]:
        """:meth:`fail` for many claims at a cost that does not grow with their number.

        The same rules as :meth:`complete_many`, item by item.
        """
        ...

    def release(self, claims: Sequence[Claim]) -> int:
        """Give products back untouched (an outage: the attempt does not count)."""
        ...

    def requeue_failed(self) -> int:
        """Send this stage's ``error`` rows with attempts left back to the queue."""
        ...


class StatusReport(Protocol):
    """Counts of products by brand and status."""

    def status_counts(self) -> list[StatusCount]:
        """Return one row per (brand, image_status, ximilar_status, sync_status)."""
        ...


class RunningLog(Protocol):
    """An open ``scraper_logs`` row."""

    @property
    def id(self) -> int:
        """The row's id."""
        ...

    @property
    def started_at(self) -> datetime:
        """When the run started."""
        ...


class RunRecorder(Protocol):
    """Writes ``scraper_logs``: one row per job run."""

    def start(self, scraper_name: str, metadata: dict[str, Any] | None = None) -> RunningLog:
        """Open a run row with status ``running``."""
        ...

    def finish(self, run: RunningLog, result: RunResult) -> None:
        """Close the run row with its counts, duration, error and metadata."""
        ...

    def recent(self, scraper_name: str | None = None, limit: int = 20) -> list[RunLog]:
        """Return the latest runs, newest first."""
        ...


class CatalogRun(Protocol):
    """One collection run of a brand's catalog: its items, then how it ended."""

    run_id: str | None

    def items(self) -> Iterator[Any]:
        """Yield the raw items page by page, never all at once.

        Each is a decoded JSON value, or the item's own JSON text still undecoded (the Apify
        source yields ``msgspec.Raw``); the source's item mapper reads either.
        """
        ...

    def status(self) -> str:
        """Return the final status: SUCCEEDED, FAILED, TIMED-OUT, ABORTED or RUNNING."""
        ...

    def end_reason(self) -> str | None:
        """Return why the run ended as it did, in the source's words; None when it says nothing."""
        ...


class CatalogSource(Protocol):
    """Starts a brand's catalog collection (an Apify task, or a dataset file)."""

    def start(self, brand: str) -> CatalogRun:
        """Run the brand's collection and return the run, finished or given up on."""
        ...


class FetchedPhoto(Protocol):
    """A photo's bytes as fetched, before validation (read-only, so frozen models fit)."""

    @property
    def url(self) -> str:
        """The URL the photo was asked for."""
        ...

    @property
    def content(self) -> bytes:
        """The body as received."""
        ...

    @property
    def content_type(self) -> str | None:
        """The ``Content-Type`` the server gave, if any."""
        ...


class PhotoFetcher(Protocol):
    """Fetches product photos from the brands' CDNs (through the proxy)."""

    def fetch(self, url: str, *, deadline: float) -> FetchedPhoto:
        """Fetch ``url`` before monotonic time ``deadline``; ProductError or OutageError."""
        ...


class PreparedPhoto(Protocol):
    """A validated photo, as it is to be stored."""

    @property
    def content(self) -> bytes:
        """The bytes to store."""
        ...

    @property
    def content_type(self) -> str:
        """Their content type."""
        ...


class PhotoPreparer(Protocol):
    """Validates a fetched photo and gives the bytes to store (Pillow, in the adapters)."""

    def prepare(self, photo: FetchedPhoto) -> PreparedPhoto:
        """Return what to store; :class:`~undecat.errors.PhotoError` if the photo is unusable."""
        ...


BuildCollage = Callable[[Sequence[bytes]], bytes]
"""Builds a collage: photos' bytes in catalog order -> collage JPEG bytes (ProductError for
unusable photos; Pillow, in the adapters)."""


class ObjectStore(Protocol):
    """An S3-compatible bucket (or its filesystem stand-in)."""

    def put(self, key: str, data: bytes, content_type: str) -> str:
        """Store ``data`` at ``key`` and return its public URL."""
        ...

    def get(self, key: str) -> bytes:
        """Return the object at ``key``; ProductError when it does not exist."""
        ...

    def exists(self, key: str) -> bool:
        """Return whether an object is stored at ``key``."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix``; return how many."""
        ...

    def delete(self, keys: Sequence[str]) -> int:
        """Delete the objects at ``keys`` by key, never by listing; return how many went.

        A key with no object is fine (S3 does not say which existed: there, the keys asked).
        """
        ...

    def public_url(self, key: str) -> str:
        """Return the public URL of ``key`` (whether or not it exists)."""
        ...

    def key_for_url(self, url: str) -> str:
        """Return the key of one of this store's public URLs; ProductError otherwise."""
        ...


class VisualIndex(Protocol):
    """A Ximilar collection (or the dry-run recorder standing in for it)."""

    def insert(self, records: Sequence[dict[str, Any]]) -> set[str]:
        """Insert records; return the ``_id`` values the index confirmed."""
        ...

    def delete(self, record_ids: Sequence[str]) -> set[str]:
        """Delete records by ``_id``; return the ids that are now gone."""
        ...

    def existing(self, record_ids: Sequence[str]) -> set[str]:
        """Return which of ``record_ids`` the index holds."""
        ...


class XimilarLedger(Protocol):
    """Where the Ximilar stage writes down record ids before it sends them.

    Ids noted and never confirmed are deleted from the collection once the product's photos
    change or it is delisted (the database moves them among the known record ids), so a
    crash between an insert and the row's update cannot leave records no row knows of.
    """

    def note_pending(self, owner: str, pending: Mapping[int, Sequence[str]]) -> set[int]:
        """Note record ids per product id while ``owner`` leases it; return the noted products."""
        ...

    def clear_pending(self, product_ids: Sequence[int]) -> None:
        """Forget the noted ids of products whose outcome has been written."""
        ...


class StoreLocator(Protocol):
    """A brand's store finder: the physical stores of the configured country."""

    def stores(self) -> list[Store]:
        """Return the stores near the configured point, of the configured country only."""
        ...


class AvailabilitySource(Protocol):
    """Which sizes of one colour product each store has in stock (the brand's stock API)."""

    def in_stock(
        self, colour_product_id: str, store_ids: Sequence[int]
    ) -> Mapping[int, Sequence[SizeInStock]]:
        """Return the in-stock sizes per store; a store left out has nothing in stock.

        Raises :class:`~undecat.errors.ProductError` for an answer that cannot be read (that
        product's fault), :class:`~undecat.errors.BlockedError` for the anti-bot block and
        another :class:`~undecat.errors.OutageError` when the site stays down or busy.
        """
        ...


class AvailabilityStore(Protocol):
    """Staging's stores and availability (``raw_stores``, ``raw_availability``)."""

    def stores(self, brand: str) -> list[Store]:
        """Return the stored stores of ``brand``, by store id."""
        ...

    def upsert_stores(self, stores: Sequence[Store]) -> int:
        """Insert or refresh stores on ``(brand, store_id)``; return how many changed."""
        ...

    def poll_targets(self, brand: str) -> list[PollTarget]:
        """Active products of ``brand``: pilot first, then the least recently polled."""
        ...

    def write(self, records: Sequence[AvailabilityRecord]) -> int:
        """Upsert one row per (brand, store, product, UTC day); the later answer wins."""
        ...

    def coverage(self, brand: str, day: date) -> float:
        """Share of the active products of ``brand`` polled on the UTC ``day``."""
        ...

    def delete_older_than(self, cutoff: datetime, limit: int) -> int:
        """Delete at most ``limit`` rows fetched before ``cutoff``; return how many."""
        ...


class SyncSource(Protocol):
    """What ``sync_to_production`` reads from staging besides its claims."""

    def entries(self, ids: Sequence[int]) -> list[CatalogEntry]:
        """Return the staging rows ``ids`` as production receives them."""
        ...

    def all_stores(self) -> list[Store]:
        """Return every stored store."""
        ...

    def latest_availability(self, since: datetime | None) -> Iterator[list[AvailabilityRecord]]:
        """The latest row per (brand, store, product) fetched after ``since``, in pages."""
        ...


class ProductionCatalog(Protocol):
    """The production database's ``catalog`` schema."""

    def upsert_products(self, entries: Sequence[CatalogEntry]) -> int:
        """Write verified products (active); return how many rows changed."""
        ...

    def deactivate(self, entries: Sequence[CatalogEntry]) -> int:
        """Mark delisted products inactive (rows kept); return how many changed."""
        ...

    def upsert_stores(self, stores: Sequence[Store]) -> int:
        """Copy stores; return how many rows changed."""
        ...

    def upsert_availability(self, records: Sequence[AvailabilityRecord]) -> int:
        """Copy the current answer per (brand, store, product); return how many changed."""
        ...

    def availability_watermark(self) -> datetime | None:
        """The newest ``fetched_at`` production holds (None when it holds none)."""
        ...


class Metrics(Protocol):
    """Told when each run starts and ends (the Prometheus text file of the run).

    Raises only :class:`~undecat.errors.UndecatError`; the run log path logs such a failure
    and carries on: metrics never fail a run.
    """

    def run_started(self, scraper_name: str) -> None:
        """A run of ``scraper_name`` starts now."""
        ...

    def run_finished(self, scraper_name: str, result: RunResult) -> None:
        """The run of ``scraper_name`` ended with ``result`` (logged or not)."""
        ...


class OpsReport(Protocol):
    """What the operators look at: the status report and the queue depths."""

    def report(self, *, collages: int = 12) -> Report:
        """Return the funnel, the leased work, the runs, the errors and the newest collages."""
        ...

    def queue_depth(self) -> list[QueueDepth]:
        """Return the products waiting per stage, status (pending / error) and brand."""


@attrs.frozen
class DelistedObjects:
    """A product delisted long enough ago whose stored objects are to be removed."""

    row_id: int
    brand: str
    external_id: str
    photos: int
    has_collage: bool


class RetentionStore(Protocol):
    """What the retention job removes from the staging database."""

    def delete_run_logs_older_than(self, days: int) -> int:
        """Delete finished ``scraper_logs`` rows started over ``days`` days ago; how many."""
        ...

    def delisted_before(self, cutoff: datetime, limit: int) -> list[DelistedObjects]:
        """Products delisted before ``cutoff`` that still hold photos or a collage."""
        ...

    def forget_objects(self, row_id: int, cutoff: datetime) -> bool:
        """Mark a still-delisted product's objects deleted; False if it came back."""
        ...


# Operator commands (undecat status, requeue, runs, show, pilot) ------------------------


class QueueAdmin(Protocol):
    """An operator's view of one stage's queue: where its rows stand, failures put back."""

    def counts(self) -> QueueCounts:
        """Return where this stage's rows stand (leased, stale, failed, exhausted, ...)."""
        ...

    def requeue(
        self, *, brand: str | None = None, reason: str | None = None, dry_run: bool = False
    ) -> int:
        """Put the stage's failed rows back with fresh attempts (or count them); return how many."""
        ...


class OperatorQueries(Protocol):
    """The staging queries behind ``undecat runs``, ``show`` and ``pilot``."""

    def runs(
        self, *, job: str | None, since: datetime, failed_only: bool, limit: int = 500
    ) -> list[dict[str, Any]]:
        """Runs started since ``since``, newest first."""
        ...

    def product(self, brand: str, external_id: str) -> dict[str, Any] | None:
        """One staging product with every stage's columns, or None."""
        ...

    def set_scope(self, brand: str, external_ids: Sequence[str], scope: str) -> int:
        """Set ``index_scope`` of the listed products; return how many changed."""
        ...

    def sample_pilot(self, brand: str, percent: float) -> int:
        """Put a stable ``percent`` share of the brand's products into the pilot."""
        ...


class ProductionLookup(Protocol):
    """One product as the production catalog holds it (``undecat show``)."""

    def has_catalog(self) -> bool:
        """Whether the production database has its ``catalog.products`` table yet."""
        ...

    def product(self, brand: str, external_id: str) -> dict[str, Any] | None:
        """The product's ``catalog.products`` row, or None."""
        ...


# User media (the app backend's library, undecat.user_media) ---------------------------


class MediaObjects(Protocol):
    """The bucket: objects addressed by checked items, never by raw keys."""

    def put_pair(self, item: MediaItem, main: bytes, thumb: bytes) -> None:
        """Upload the item's image, then its thumbnail."""

    def signed_urls(self, item: MediaItem, lifetime: timedelta) -> tuple[str, str]:
        """Presigned GET URLs of the item's (image, thumbnail)."""

    def delete_items(self, items: Sequence[MediaItem]) -> None:
        """Delete both objects of each item (missing ones count as deleted)."""


class MediaIndex(Protocol):
    """The index of the bucket (it allows no LIST)."""

    def begin(self, item: MediaItem, main_bytes: int, thumb_bytes: int) -> uuid.UUID:
        """Record the item's two objects as incomplete; return the attempt id."""

    def complete(self, item: MediaItem, attempt: uuid.UUID) -> int:
        """Mark the rows of ``attempt`` complete; return how many rows were."""

    def attempts(self, item: MediaItem) -> list[tuple[str, uuid.UUID]]:
        """(key, attempt) of each indexed object of the item."""

    def forget(self, entries: Sequence[tuple[str, uuid.UUID]]) -> list[str]:
        """Delete the rows whose (key, attempt) is listed; return the keys deleted."""

    def next_batch(self, user_id: str, limit: int) -> list[IndexedObject]:
        """Up to ``limit`` indexed objects of one user."""

    def totals(self, user_id: str) -> Mapping[MediaKind, KindUsage]:
        """Complete items and bytes of one user per kind."""


class MediaChecker(Protocol):
    """Checks an upload pair before anything is written."""

    def check(self, main: bytes, thumb: bytes, *, main_name: str) -> CheckedPair:
        """The pair as it will be stored; UserMediaError when refused."""
