"""The photo downloader stage (photo_downloader host): the originals of every ``pending`` product.

``download_pending`` claims ``pending`` products (the ``download`` lease) in ``BATCH_SIZE``
batches until none is left. Products are worked on ``CONCURRENT_DOWNLOADS`` at a time; the
next batch is claimed as soon as every product of the previous one has started, so workers
do not wait for a batch's slowest product. For each product, up to five photos are fetched in
catalog order, validated, and uploaded to ``originals/{brand}/{external_id}/{n}.jpg``
(``n`` = 1, 2, ...). Objects numbered past the product's photos (left by an earlier,
longer photo list) are deleted by key. Only when every photo is stored is the claim
completed with their public URLs (``uploaded``). The host's ``retry_failed`` and
``cleanup_temp`` are the shared ones of :mod:`undecat.jobs.maintenance`.

Results are written in batches (:mod:`undecat.jobs.settle`): a finished product's completion
or failure waits in a buffer that is written with one ``complete_many`` and one
``fail_many`` once ``settle_batch`` results wait (50, or ``BATCH_SIZE`` if smaller) or the
oldest has waited ``settle_wait`` seconds (2 s), and always before claims are released, on a
stop, on an outage and at the end of the run. Until then its claim is open like any other:
an outage while writing leaves it to be released, a crash to lapse, and a result whose
lease was lost meanwhile is counted ``lease_lost``, as when it was written at once.

Failure handling, the rule of every stage:

* a **product error** (404, not an image, too large, too slow -- anything
  :class:`~undecat.errors.ProductError`) marks that product ``error`` with a short message
  naming the photo, and the batch goes on;
* an **outage** (proxy down or refusing the credentials, S3 unreachable, database gone --
  :class:`~undecat.errors.OutageError`) stops the run: no new product is started, the
  products in flight finish, every claim not settled is released untouched (the attempt
  does not count), and the run ends ``failed``. Product errors reported after the outage are
  not trusted (a proxy dying mid-body looks like a photo cut short) and are released too;
* a **blocked proxy exit** looks like product errors, one per product: connection refused or
  reset, names that do not resolve, TLS that does not verify, tunnels the proxy could not
  open, 403s (:class:`~undecat.errors.PhotoTransportError`). The circuit breaker holds such
  a product unsettled instead of failing it; a success or any other product error in
  between ends the streak and fails the held ones as usual, but ``breaker_threshold``
  products in a row (``PROXY_BREAKER_THRESHOLD``; 403s count only when they came from at least
  two different hosts) stop the run as a :class:`~undecat.errors.ProxyError` outage, and
  every held product is released without its attempt counted.

Nothing is lost if the process dies anywhere: a photo uploaded before a crash is simply
uploaded again to the same key when the lease lapses and another run claims the product,
and the row only ever says ``uploaded`` once all its photos are in the store.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import timedelta

import attrs

from undecat.domain.keys import original_key
from undecat.domain.models import Claim, Product, RunCounts, RunResult
from undecat.domain.stages import PhotosStored
from undecat.domain.status import RunStatus
from undecat.errors import OutageError, PhotoTransportError, ProductError, ProxyError
from undecat.jobs.runlog import StopToken
from undecat.jobs.settle import SETTLE_BATCH, SETTLE_WAIT, Settlements
from undecat.ports import (
    Clock,
    ObjectStore,
    PhotoFetcher,
    PhotoPreparer,
    WorkQueue,
)
from undecat.redact import redact_text, redact_url

__all__ = [
    "DownloadSettings",
    "PhotoDownloader",
]

_log = logging.getLogger("undecat.jobs.download")
_MESSAGE_LIMIT = 500


@attrs.frozen
class DownloadSettings:
    """How the stage claims and paces its work."""

    owner: str
    lease: timedelta
    batch_size: int = 200
    concurrency: int = 10
    photos_per_product: int = 5
    product_timeout: float = 120.0
    max_batches: int | None = None  # None: until no pending product is left
    #: Products in a row failing at the transport level that stop the run as an outage.
    breaker_threshold: int = 5
    #: Results written in one call (``complete_many`` / ``fail_many``) once this many wait,
    #: or once the oldest has waited ``settle_wait`` seconds (see :mod:`undecat.jobs.settle`).
    settle_batch: int = SETTLE_BATCH
    settle_wait: float = SETTLE_WAIT


@attrs.define
class _Flow:
    """The run's claims not settled yet, how many have not started, and what stopped it.

    A claim whose result waits in ``book`` (not written yet) is still open.
    """

    book: Settlements
    open: dict[int, Claim] = attrs.field(factory=dict)
    begun: set[int] = attrs.field(factory=set)
    unstarted: int = 0
    outage: OutageError | None = None
    stop: threading.Event = attrs.field(factory=threading.Event)
    changed: threading.Condition = attrs.field(factory=threading.Condition)

    def add(self, claims: Sequence[Claim]) -> None:
        with self.changed:
            self.open.update((c.product.id, c) for c in claims)
            self.unstarted += len(claims)

    def started(self, claim: Claim) -> None:
        with self.changed:
            self.begun.add(claim.product.id)
            self.unstarted -= 1
            self.changed.notify_all()

    def settle(self, claim: Claim) -> None:
        with self.changed:
            self.open.pop(claim.product.id, None)

    def halt(self, exc: OutageError | None) -> None:
        with self.changed:
            if self.outage is None:
                self.outage = exc
            self.stop.set()
            self.changed.notify_all()

    def wait_for_starts(self, stopping: Callable[[], bool], tick: Callable[[], None]) -> None:
        """Return once every product claimed so far has started (or the run is stopping).

        ``tick`` runs every 0.1 s of waiting, outside the lock (it writes due results).
        """
        # A stop request is not a notification of this condition: look every 0.1 s.
        while True:
            with self.changed:
                if self.changed.wait_for(
                    lambda: self.unstarted <= 0 or self.stop.is_set() or stopping(), timeout=0.1
                ):
                    return
            tick()

    def unsettled(self) -> list[Claim]:
        with self.changed:
            return list(self.open.values())

    def take_unstarted(self) -> list[Claim]:
        """Remove and return the open claims no worker has begun (to release them now)."""
        with self.changed:
            taken = [c for i, c in self.open.items() if i not in self.begun]
            for claim in taken:
                del self.open[claim.product.id]
            return taken


@attrs.frozen
class _Suspect:
    """A product held by the breaker: its claim and the error it would be failed with."""

    claim: Claim
    message: str
    host: str | None
    forbidden: bool


@attrs.define
class _Breaker:
    """Consecutive products failing at the transport level; trips at ``threshold``."""

    threshold: int
    streak: list[_Suspect] = attrs.field(factory=list)
    tripped: bool = False
    lock: threading.Lock = attrs.field(factory=threading.Lock, repr=False)

    def suspect(self, suspect: _Suspect) -> bool:
        """Hold ``suspect``; return True when the streak now trips the breaker."""
        with self.lock:
            self.streak.append(suspect)
            if self.tripped or len(self.streak) < self.threshold:
                return self.tripped
            # A 403 may be one CDN refusing one product; several hosts refusing is us.
            plain = any(not s.forbidden for s in self.streak)
            hosts = {s.host for s in self.streak if s.forbidden}
            self.tripped = plain or len(hosts) >= 2  # "several" hosts
            return self.tripped

    def reset(self) -> list[_Suspect]:
        """End the streak (unless tripped); return the held products, now to be failed."""
        with self.lock:
            if self.tripped:
                return []
            held, self.streak = self.streak, []
            return held

    def summary(self) -> str:
        with self.lock:
            hosts = sorted({s.host or "?" for s in self.streak})
            last = self.streak[-1].message if self.streak else ""
        return (
            f"{len(self.streak)} products in a row failed at the transport level"
            f" (hosts: {', '.join(hosts)}; last: {last}): the proxy exit is blocked or the"
            " network is down; none of them is charged an attempt"
        )


@attrs.frozen
class PhotoDownloader:
    """The download stage over its ports; see the module docstring."""

    queue: WorkQueue
    fetcher: PhotoFetcher
    preparer: PhotoPreparer
    store: ObjectStore
    clock: Clock
    settings: DownloadSettings
    secrets: tuple[str, ...] = attrs.field(default=(), repr=False)
    #: Set on SIGTERM / SIGINT: start nothing more, abandon the product in hand between two
    #: photos, release what is not settled (the run is logged ``interrupted``).
    stop: StopToken | None = attrs.field(default=None, repr=False)

    def _stopping(self) -> bool:
        return self.stop is not None and self.stop.requested

    def download_pending(self) -> RunResult:
        """Download the photos of every pending product, batch after batch."""
        s = self.settings
        tally, flow = _counts(), _Flow(self._book())
        breaker = _Breaker(max(1, s.breaker_threshold))
        try:
            with ThreadPoolExecutor(s.concurrency, thread_name_prefix="undecat-download") as pool:
                running: list[Future[None]] = []
                try:
                    while s.max_batches is None or tally["batches"] < s.max_batches:
                        # The next batch is claimed as soon as every product claimed so far
                        # has started: workers never idle between batches, and no claim
                        # waits long for a worker while its lease runs.
                        flow.wait_for_starts(self._stopping, lambda: self._flush_due(flow, tally))
                        running = _reap(running)
                        if flow.stop.is_set() or self._stopping():
                            break
                        try:
                            claims = self.queue.claim(s.owner, s.batch_size, s.lease)
                        except OutageError as exc:
                            flow.halt(exc)
                            break
                        if not claims:
                            break
                        tally.add(batches=1, taken=len(claims))
                        flow.add(claims)
                        running += [
                            pool.submit(self._work, c, flow, tally, breaker) for c in claims
                        ]
                    self._finish_running(running, flow, tally)
                    if not flow.stop.is_set() and not self._stopping():
                        # A streak shorter than the threshold at the end: ordinary failures.
                        self._charge(breaker.reset(), flow, tally)
                except BaseException:
                    flow.halt(None)  # a bug: start nothing more, let the running ones end
                    raise
        finally:
            # Every worker has ended: what waits in the buffer is written, then whatever is
            # still open (unstarted, held by the breaker, or not written) is handed back.
            self._flush(flow, tally)
            self._release(flow, tally)
        return self._result(tally, flow.outage)

    def _book(self) -> Settlements:
        s = self.settings
        # Never more than a claimed batch's worth: a small BATCH_SIZE means results are
        # wanted soon, and the cost stays a constant per batch either way.
        size = max(1, min(s.settle_batch, s.batch_size))
        return Settlements(self.queue, self.clock.monotonic, size=size, wait=s.settle_wait)

    def _finish_running(self, running: list[Future[None]], flow: _Flow, tally: RunCounts) -> None:
        """Wait for the products started; on a stop, first hand back those not begun.

        Even if the product in hand outlives the grace period, only its own lease stays held.
        """
        released = flushed = False
        waiting = set(running)
        while waiting:
            done, waiting = wait(waiting, timeout=0.1)
            for future in done:
                future.result()  # a bug's exception, if one ended with one
            if self._stopping() and not released:
                self._flush(flow, tally)  # the results in hand are not left to a SIGKILL
                self._release(flow, tally, flow.take_unstarted())
                released = flushed = True
            elif flow.stop.is_set() and not flushed:
                self._flush(flow, tally)  # an outage: what was done before it is written now
                flushed = True
            else:
                self._flush_due(flow, tally)

    def _release(self, flow: _Flow, tally: RunCounts, left: list[Claim] | None = None) -> None:
        left = flow.unsettled() if left is None else left
        if not left:
            return
        try:
            released = self.queue.release(left)
        except OutageError as exc:
            # The database is gone too: the leases lapse on their own and the rows come back.
            _log.warning("download: could not release %d claim(s): %s", len(left), exc)
            return
        tally.add(released=released)

    def _work(self, claim: Claim, flow: _Flow, tally: RunCounts, breaker: _Breaker) -> None:
        """Download one product and settle its claim (complete or fail), unless stopped."""
        flow.started(claim)
        if flow.stop.is_set() or self._stopping():
            return  # left unsettled: released at the end of the run
        product = claim.product
        try:
            if not self._lease_covers(claim):
                flow.settle(claim)  # another worker holds it now: not ours to touch
                tally.add(lease_lost=1)
                return
            urls = self._store_photos(product, tally)
        except _Stopped:
            return  # abandoned between two photos: released at the end of the run
        except OutageError as exc:
            flow.halt(exc)
            return
        except ProductError as exc:
            self._product_failed(claim, exc, flow, tally, breaker)
            return
        self._settle(claim, flow, tally, urls=urls)
        self._charge(breaker.reset(), flow, tally)

    def _product_failed(
        self, claim: Claim, exc: ProductError, flow: _Flow, tally: RunCounts, breaker: _Breaker
    ) -> None:
        """Fail the product, or hold it for the breaker when its transport failed."""
        if flow.stop.is_set():
            return  # maybe the outage's doing: handed back, not marked
        if isinstance(exc, PhotoTransportError):
            self._suspect(claim, exc, flow, tally, breaker)
            return
        self._settle(claim, flow, tally, error=self._message(exc))
        self._charge(breaker.reset(), flow, tally)

    def _suspect(
        self,
        claim: Claim,
        exc: PhotoTransportError,
        flow: _Flow,
        tally: RunCounts,
        breaker: _Breaker,
    ) -> None:
        """Hold a transport-level failure unsettled; trip the breaker at its threshold."""
        held = _Suspect(claim, self._message(exc), exc.host, exc.forbidden)
        tally.add(breaker_held=1)
        if breaker.suspect(held):
            # Every held product stays unsettled: released at the end, attempt not counted.
            message = redact_text(breaker.summary(), self.secrets)
            flow.halt(ProxyError(message))

    def _charge(self, suspects: Sequence[_Suspect], flow: _Flow, tally: RunCounts) -> None:
        """Fail the products a broken streak held: their errors were theirs after all."""
        for held in suspects:
            if flow.stop.is_set():
                return  # an outage came meanwhile: they are released with the rest
            self._settle(held.claim, flow, tally, error=held.message)

    def _lease_covers(self, claim: Claim) -> bool:
        """Renew a lease that has run half its course before the product starts; False if lost.

        A claim may wait behind others of its batch; renewing it keeps a second worker from
        taking over a product that is being downloaded (LEASE_SECONDS should exceed
        PRODUCT_TIMEOUT by a margin, as the defaults of 3600 s and 120 s do).
        """
        if claim.lease_until - self.clock.now() >= self.settings.lease / 2:
            return True
        return self.queue.extend([claim], self.settings.lease) == 1

    def _settle(
        self,
        claim: Claim,
        flow: _Flow,
        tally: RunCounts,
        *,
        urls: tuple[str, ...] = (),
        error: str | None = None,
    ) -> None:
        """Hand the product's result to the buffer; write the buffer if that made it due."""
        if error is None:
            due = flow.book.complete(claim, PhotosStored(urls))
        else:
            due = flow.book.fail(claim, error)
        if due:
            self._flush(flow, tally)

    def _flush_due(self, flow: _Flow, tally: RunCounts) -> None:
        """Write the buffer if its oldest result has waited long enough (or it is full)."""
        if flow.book.due():
            self._flush(flow, tally)

    def _flush(self, flow: _Flow, tally: RunCounts) -> None:
        """Write the waiting results: settle the claims written, count and log each.

        An outage halts the run like any other: the claims it kept from being written stay
        open and are released at the end (or lapse), nothing is marked.
        """
        flushed = flow.book.flush()
        for settled in flushed.settled:
            flow.settle(settled.claim)
            product = settled.claim.product
            if not settled.held:
                tally.add(lease_lost=1)
                _log.warning("download: lease of %s lost before it was written", _name(product))
            elif settled.error is None:
                tally.add(done=1)
            else:
                tally.add(failed=1)
                _log.warning("download: %s failed: %s", _name(product), settled.error)
        if flushed.outage is not None:
            flow.halt(flushed.outage)

    def _store_photos(self, product: Product, tally: RunCounts) -> tuple[str, ...]:
        """Fetch, validate and upload every photo of ``product`` in order; return their URLs."""
        sources = [
            # The catalog keeps the CDN's width placeholder; the document asks for 1920.
            url.replace("{width}", "1920")
            for url in product.original_image_urls[: self.settings.photos_per_product]
        ]
        if not sources:
            raise ProductError("the product has no photo URLs", product=_name(product))
        deadline = self.clock.monotonic() + self.settings.product_timeout
        stored: list[str] = []
        for n, url in enumerate(sources, start=1):
            if self._stopping():
                raise _Stopped
            try:
                photo = self.preparer.prepare(self.fetcher.fetch(url, deadline=deadline))
            except PhotoTransportError as exc:
                where = f"photo {n} of {len(sources)} ({redact_url(url)})"
                raise PhotoTransportError(
                    f"{where}: {exc}",
                    url=exc.url,
                    host=exc.host,
                    forbidden=exc.forbidden,
                    product=_name(product),
                ) from exc
            except ProductError as exc:
                where = f"photo {n} of {len(sources)} ({redact_url(url)})"
                raise ProductError(f"{where}: {exc}", product=_name(product)) from exc
            key = original_key(product.brand, product.external_id, n)
            stored.append(self.store.put(key, photo.content, photo.content_type))
            tally.add(photos_stored=1)
        # The product may have had more photos before a re-collect: their objects would
        # stay public forever. Deleted by key (a LIST per product would cost more and could
        # catch another product's keys), up to the most this stage ever stores.
        orphans = [
            original_key(product.brand, product.external_id, n)
            for n in range(len(sources) + 1, self.settings.photos_per_product + 1)
        ]
        if orphans:
            self.store.delete(orphans)
        return tuple(stored)

    def _message(self, exc: ProductError) -> str:
        """A short, readable ``error_message`` with no secret in it."""
        text = redact_text(f"download: {exc}", self.secrets)
        return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 1] + "…"

    def _result(self, tally: RunCounts, outage: OutageError | None) -> RunResult:
        message = None
        if outage is not None:
            message = redact_text(f"{type(outage).__name__}: {outage}", self.secrets)
            _log.error("download: stopped by an outage: %s", message)
            status = RunStatus.FAILED
        else:
            status = RunStatus.PARTIAL if tally.failed else RunStatus.SUCCESS
        return RunResult(
            status=status,
            records_fetched=tally.taken,
            records_new=tally.done,
            records_errors=tally.failed,
            error_message=message,
            metadata=dict(tally.detail),
            items=tally.items(),
        )


def _counts() -> RunCounts:
    """The run's counts; their names are its ``scraper_logs`` metadata keys."""
    return RunCounts.of(
        "batches", "photos_stored", "breaker_held", skipping=("lease_lost", "released")
    )


class _Stopped(Exception):  # noqa: N818  # control flow, not an error
    """The run was asked to stop while a product was in hand."""


def _reap(running: list[Future[None]]) -> list[Future[None]]:
    """Drop finished products (raising a bug's exception, if one ended with one)."""
    for future in running:
        if future.done():
            future.result()
    return [f for f in running if not f.done()]


def _name(product: Product) -> str:
    return f"{product.brand}/{product.external_id}"
