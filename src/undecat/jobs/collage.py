"""The collage stage (collage host): one try-on collage per ``uploaded`` product.

``process_new`` claims ``uploaded`` products (the ``collage`` lease), reads each one's
originals from the object store by the keys of its ``image_urls``, builds the collage, uploads
it to ``collages/{brand}/{external_id}.jpg`` and completes the claim with the collage's public
URL (``collage_ready``). ``workers`` products of a batch (``COLLAGE_WORKERS``, 2 by default,
as the document's ``--concurrency=2``) are built at once on threads: Pillow decodes and
encodes without holding the GIL, and the object store's reads and writes wait on the
network, so two threads keep two cores busy. The host's ``retry_failed`` and
``cleanup_temp`` are the shared ones of :mod:`undecat.jobs.maintenance`.

Failure handling follows the rule of every stage: a photo that is missing, not an image or
too large fails *that* product (``error`` with the reason); an object store or database
outage stops the batch: no further product is started, the ones in hand on the other
workers finish, the remaining claims are handed back untouched and the run is logged failed.

Results are written in batches (:mod:`undecat.jobs.settle`): each product's completion or
failure waits in the batch's buffer, written with one ``complete_many`` and one
``fail_many`` once ``settle_batch`` results wait or the oldest has waited ``settle_wait``
seconds (looked at as products finish), and always at the end of the batch, before its
unsettled claims are released. A result not yet written leaves its claim open: an outage
while writing hands it back with the rest, and a crash leaves it to lapse (below).

Crash safety comes from two facts rather than from a transaction: the builder is a pure
function of the photos (the same originals give byte-identical JPEG bytes), and the key
depends only on the product. A worker that dies between the upload and the status update
(its result still in the buffer) leaves the row leased but not ``collage_ready``; when the
lease lapses another run rebuilds the same bytes and overwrites the same key, so there is
never a second collage, nor a product marked ready without one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import timedelta

import attrs

from undecat.domain.collage import CollagePhotoError
from undecat.domain.keys import collage_key
from undecat.domain.models import Claim, Product, RunCounts, RunResult
from undecat.domain.stages import CollageStored
from undecat.domain.status import RunStatus
from undecat.errors import OutageError, ProductError
from undecat.jobs.runlog import StopToken
from undecat.jobs.settle import SETTLE_BATCH, SETTLE_WAIT, Settlements
from undecat.ports import BuildCollage, Clock, ObjectStore, WorkQueue
from undecat.redact import redact_url

__all__ = [
    "COLLAGE_CONTENT_TYPE",
    "CollageStage",
]

_log = logging.getLogger("undecat.jobs.collage")

#: The content type collages are stored with.
COLLAGE_CONTENT_TYPE = "image/jpeg"


@attrs.frozen
class CollageStage:
    """``process_new`` over the work queue, the object store and a builder."""

    queue: WorkQueue
    store: ObjectStore
    build: BuildCollage = attrs.field(repr=False)
    clock: Clock = attrs.field(repr=False)
    owner: str
    batch_size: int = 100
    lease: timedelta = timedelta(hours=1)
    #: Products built at once (``COLLAGE_WORKERS``; the document's collage worker runs two).
    #: Pillow decodes and encodes without the GIL, so two threads use two cores.
    workers: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    #: Set on SIGTERM / SIGINT: the collages in hand are finished, the rest released.
    stop: StopToken | None = attrs.field(default=None, repr=False)
    #: Results written in one call once this many wait or the oldest has waited
    #: ``settle_wait`` seconds (checked as products finish), and at the end of every batch.
    settle_batch: int = SETTLE_BATCH
    settle_wait: float = SETTLE_WAIT

    def _stopping(self) -> bool:
        return self.stop is not None and self.stop.requested

    def process_new(self) -> RunResult:
        """Build and store the collage of every claimable ``uploaded`` product."""
        tally = RunCounts.of(skipping=("lease_lost",))
        started = self.clock.monotonic()
        with ThreadPoolExecutor(self.workers, thread_name_prefix="undecat-collage") as pool:
            while not self._stopping() and (
                claims := self.queue.claim(self.owner, self.batch_size, self.lease)
            ):
                tally.add(taken=len(claims))
                outage = self._work_through(claims, tally, pool)
                if outage is not None:
                    return self._result(tally, started, outage)
        return self._result(tally, started, None)

    def _work_through(
        self, claims: Sequence[Claim], tally: RunCounts, pool: ThreadPoolExecutor
    ) -> OutageError | None:
        """Process one batch on the workers; on an outage release what is left, return it."""
        size = max(1, min(self.settle_batch, len(claims)))
        book = Settlements(self.queue, self.clock.monotonic, size=size, wait=self.settle_wait)
        batch = _Batch(list(claims), renewed=self.clock.monotonic(), book=book)
        futures = [pool.submit(self._guarded, claim, batch, tally) for claim in claims]
        wait(futures)
        for future in futures:
            future.result()  # a bug's exception (or a crash), if one ended with one
        # Every worker of the batch has ended: the results waiting are written, then what
        # is still open (not started, or not written because of an outage) is handed back.
        self._flush(batch, tally)
        left = batch.unsettled()
        if left:
            self._release(left)
        return batch.outage

    def _guarded(self, claim: Claim, batch: _Batch, tally: RunCounts) -> None:
        """One product on a worker, unless the run is stopping or an outage stopped it."""
        if not batch.may_start(self._stopping):
            return  # left unsettled: released with the rest of the batch
        try:
            # A long batch must not outlive its leases: another worker would take the
            # rest over and do the same work twice.
            self._renew(batch)
            due = self._one(claim, batch.book)
        except OutageError as exc:
            batch.halt(exc)  # this product stays unsettled and is released
            return
        if due:
            self._flush(batch, tally)

    def _flush(self, batch: _Batch, tally: RunCounts) -> None:
        """Write the batch's waiting results; an outage halts the batch (the rest is released)."""
        flushed = batch.book.flush()
        for settled in flushed.settled:
            batch.settle(settled.claim)
            if not settled.held:
                # Another worker took the row over after our lease lapsed. It writes the same
                # bytes to the same key, so the object we stored is not a stray.
                _log.warning(
                    "collage of %s: lease lost before it was written",
                    _name(settled.claim.product),
                )
                tally.add(lease_lost=1)
            elif settled.error is None:
                tally.add(done=1)
            else:
                tally.add(failed=1)
        if flushed.outage is not None:
            batch.halt(flushed.outage)

    def _renew(self, batch: _Batch) -> None:
        """Push out the leases of the batch's open claims once half the lease has gone by."""
        with batch.lock:
            if self.clock.monotonic() - batch.renewed <= self.lease.total_seconds() / 2:
                return
            open_claims = [c for c in batch.claims if c.product.id in batch.open]
            self.queue.extend(open_claims, self.lease)
            batch.renewed = self.clock.monotonic()

    def _one(self, claim: Claim, book: Settlements) -> bool:
        """Build and store one collage; hand its result to ``book`` (True: write it now)."""
        product = claim.product
        try:
            # Everything that depends on this product's data sits inside the guard, the
            # upload too: a key the store refuses (an id too long for S3, ...) is this
            # product's fault and must not cost the rest of the batch.
            collage = self.build(self._originals(product))
            url = self.store.put(
                collage_key(product.brand, product.external_id), collage, COLLAGE_CONTENT_TYPE
            )
        except ProductError as exc:
            message = _reason(product, exc)
            _log.warning("collage of %s failed: %s", _name(product), message)
            return book.fail(claim, message)
        return book.complete(claim, CollageStored(collage_url=url))

    def _originals(self, product: Product) -> list[bytes]:
        photos = []
        count = len(product.image_urls)
        for index, url in enumerate(product.image_urls):
            try:
                photos.append(self.store.get(self.store.key_for_url(url)))
            except ProductError as exc:
                raise CollagePhotoError(
                    f"photo {index + 1} of {count} cannot be read from the store: {exc}",
                    index=index,
                ) from exc
        return photos

    def _release(self, claims: Sequence[Claim]) -> None:
        try:
            released = self.queue.release(claims)
        except OutageError as exc:
            # The database is gone too: the leases lapse on their own.
            _log.error("collage: could not release %d claim(s): %s", len(claims), exc)
            return
        _log.info("collage: released %d claim(s) after an outage", released)

    def _result(self, tally: RunCounts, started: float, outage: OutageError | None) -> RunResult:
        metadata = {
            "claimed": tally.taken,
            "built": tally.done,
            "failed": tally.failed,
            "lease_lost": tally["lease_lost"],
            "seconds": round(self.clock.monotonic() - started, 3),
        }
        if outage is not None:
            status = RunStatus.FAILED
        elif tally.failed:
            status = RunStatus.PARTIAL
        else:
            status = RunStatus.SUCCESS
        return RunResult(
            status=status,
            records_fetched=tally.taken,
            records_updated=tally.done,
            records_errors=tally.failed,
            error_message=None if outage is None else f"{type(outage).__name__}: {outage}",
            metadata=metadata,
            items=tally.items(),
        )


@attrs.define
class _Batch:
    """One batch on the workers: which claims are settled, and the outage that stopped it."""

    claims: list[Claim]
    renewed: float
    book: Settlements  # results not written yet: their claims are still open
    open: set[int] = attrs.field(init=False)
    outage: OutageError | None = None
    lock: threading.Lock = attrs.field(factory=threading.Lock)

    def __attrs_post_init__(self) -> None:
        self.open = {c.product.id for c in self.claims}

    def may_start(self, stopping: Callable[[], bool]) -> bool:
        """Whether a product may be started now (no outage, no stop requested)."""
        with self.lock:
            return self.outage is None and not stopping()

    def settle(self, claim: Claim) -> None:
        with self.lock:
            self.open.discard(claim.product.id)

    def halt(self, exc: OutageError) -> None:
        with self.lock:
            if self.outage is None:
                self.outage = exc

    def unsettled(self) -> list[Claim]:
        with self.lock:
            return [c for c in self.claims if c.product.id in self.open]


def _name(product: Product) -> str:
    return f"{product.brand}/{product.external_id}"


def _reason(product: Product, exc: ProductError) -> str:
    """The readable ``error_message`` of a failed collage, naming the photo when known."""
    if isinstance(exc, CollagePhotoError) and 0 <= exc.index < len(product.image_urls):
        return f"collage: {exc} [{redact_url(product.image_urls[exc.index])}]"
    return f"collage: {exc}"
