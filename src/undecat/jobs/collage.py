"""The collage stage (collage host): one try-on collage per ``uploaded`` product.

``process_new`` claims ``uploaded`` products (the ``collage`` lease), reads each one's
originals from the object store by the keys of its ``image_urls``, builds the collage, uploads
it to ``collages/{brand}/{external_id}.jpg`` and completes the claim with the collage's public
URL (``collage_ready``). The host's ``retry_failed`` and ``cleanup_temp`` are the shared
ones of :mod:`undecat.jobs.maintenance`.

Failure handling follows the rule of every stage: a photo that is missing, not an image or
too large fails *that* product (``error`` with the reason); an object store or database
outage stops the batch, hands the remaining claims back untouched and logs the run failed.

Crash safety comes from two facts rather than from a transaction: the builder is a pure
function of the photos (the same originals give byte-identical JPEG bytes), and the key
depends only on the product. A worker that dies between the upload and the status update
leaves the row leased but not ``collage_ready``; when the lease lapses another run rebuilds
the same bytes and overwrites the same key, so there is never a second collage, nor a
product marked ready without one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

import attrs

from undecat.domain.collage import CollagePhotoError
from undecat.domain.keys import collage_key
from undecat.domain.models import Claim, Product, RunCounts, RunResult
from undecat.domain.stages import CollageStored
from undecat.domain.status import RunStatus
from undecat.errors import OutageError, ProductError
from undecat.jobs.runlog import StopToken
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
    #: Set on SIGTERM / SIGINT: the collage in hand is finished, the rest released.
    stop: StopToken | None = attrs.field(default=None, repr=False)

    def _stopping(self) -> bool:
        return self.stop is not None and self.stop.requested

    def process_new(self) -> RunResult:
        """Build and store the collage of every claimable ``uploaded`` product."""
        tally = RunCounts.of(skipping=("lease_lost",))
        started = self.clock.monotonic()
        while not self._stopping() and (
            claims := self.queue.claim(self.owner, self.batch_size, self.lease)
        ):
            tally.add(taken=len(claims))
            outage = self._work_through(claims, tally)
            if outage is not None:
                return self._result(tally, started, outage)
        return self._result(tally, started, None)

    def _work_through(self, claims: Sequence[Claim], tally: RunCounts) -> OutageError | None:
        """Process one batch; on an outage release what is left and return the error."""
        renewed = self.clock.monotonic()
        for position, claim in enumerate(claims):
            if self._stopping():
                self._release(claims[position:])
                return None
            try:
                # A long batch must not outlive its leases: another worker would take the
                # rest over and do the same work twice.
                if self.clock.monotonic() - renewed > self.lease.total_seconds() / 2:
                    self.queue.extend(claims[position:], self.lease)
                    renewed = self.clock.monotonic()
                self._one(claim, tally)
            except OutageError as exc:
                self._release(claims[position:])
                return exc
        return None

    def _one(self, claim: Claim, tally: RunCounts) -> None:
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
            if self.queue.fail(claim, message):
                tally.add(failed=1)
            else:
                tally.add(lease_lost=1)
            return
        if self.queue.complete(claim, CollageStored(collage_url=url)):
            tally.add(done=1)
        else:
            # Another worker took the row over after our lease lapsed. It writes the same
            # bytes to the same key, so the object we just stored is not a stray.
            _log.warning("collage of %s: lease lost before completion", _name(product))
            tally.add(lease_lost=1)

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


def _name(product: Product) -> str:
    return f"{product.brand}/{product.external_id}"


def _reason(product: Product, exc: ProductError) -> str:
    """The readable ``error_message`` of a failed collage, naming the photo when known."""
    if isinstance(exc, CollagePhotoError) and 0 <= exc.index < len(product.image_urls):
        return f"collage: {exc} [{redact_url(product.image_urls[exc.index])}]"
    return f"collage: {exc}"
