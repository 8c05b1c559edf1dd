"""The availability jobs of the scraper host: stores, hourly poll, retention.

``stores_refresh``, ``availability_poll`` and ``availability_retention``.

``availability_poll`` asks the brand's stock endpoint, for every active product (pilot first,
then the least recently polled), which sizes each polled store has, and writes one row per
(brand, store, product, UTC day). One request per colour product carries all polled stores
(chunked by 20). Politeness (requests in flight, pauses) is the adapter's; this job owns the
time budget and the anti-bot rule:

* an answer that cannot be read fails *that product* (counted, with its reason); the run
  goes on;
* a 403 block waits ``AVAILABILITY_BLOCK_BACKOFF`` seconds, doubling with each block in a
  row, then asks again; after ``AVAILABILITY_MAX_BLOCKS`` blocks in a row the run stops as
  ``partial`` with the reason -- never a storm of per-product errors;
* any other outage (site down, proxy down, database down) stops the run as ``failed``.

Whatever was polled before a stop is written: rows are flushed in batches as the run goes
and once more at the end. A run never outlives ``AVAILABILITY_RUN_SECONDS`` (plus the product
in flight), so the hourly runs never overlap; a catalog too long for one hour is covered over
several, least recently polled first, and the coverage of the day is in the run log.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import attrs

from undecat.domain.availability import block_wait, records_for, store_chunks
from undecat.domain.models import (
    AvailabilityRecord,
    PollTarget,
    RunCounts,
    RunResult,
    SizeInStock,
)
from undecat.domain.status import RunStatus
from undecat.errors import BlockedError, OutageError, ProductError, UndecatError
from undecat.ports import AvailabilitySource, AvailabilityStore, Clock, StoreLocator

__all__ = ["AvailabilityJobs", "PollSettings", "availability_retention"]

_log = logging.getLogger("undecat.jobs.availability")
_REASONS_KEPT = 20


@attrs.frozen
class PollSettings:
    """The knobs of the availability jobs (from ``AVAILABILITY_*`` and ``DUBAI_ZARA_STORES``)."""

    brand: str = "zara"
    store_ids: tuple[int, ...] = ()  # DUBAI_ZARA_STORES; empty: the stored stores
    run_seconds: float = 3000.0
    concurrency: int = 1
    max_blocks: int = 3
    block_backoff: float = 30.0
    batch_rows: int = 1000


@attrs.define
class _Poll:
    """The shared state of one poll run (guarded by ``lock``)."""

    lock: threading.Lock = attrs.field(factory=threading.Lock)
    #: Products polled (done) or whose answer was unreadable (failed); requests, blocks, rows.
    counts: RunCounts = attrs.Factory(lambda: RunCounts.of("blocks", "requests", "rows"))
    blocks_in_a_row: int = 0
    reasons: list[str] = attrs.field(factory=list)
    buffer: list[AvailabilityRecord] = attrs.field(factory=list)
    stop: str | None = None  # "blocked" | "outage" | "budget"
    stop_reason: str | None = None


class _StopRunError(Exception):
    """The run is stopping (blocked, outage or out of time): leave the product."""


@attrs.frozen
class AvailabilityJobs:
    """The three availability jobs over their ports."""

    locator: StoreLocator
    source: AvailabilitySource
    store: AvailabilityStore
    clock: Clock = attrs.field(repr=False)
    settings: PollSettings = PollSettings()

    # stores_refresh -----------------------------------------------------------------------

    def stores_refresh(self) -> RunResult:
        """Read the brand's store locator into ``raw_stores`` (upsert on brand, store id)."""
        stores = [s for s in self.locator.stores() if s.brand == self.settings.brand]
        if not stores:
            return RunResult(
                status=RunStatus.FAILED,
                error_message="the store locator listed no store of the configured country",
            )
        changed = self.store.upsert_stores(stores)
        return RunResult(
            status=RunStatus.SUCCESS,
            records_fetched=len(stores),
            records_updated=changed,
            metadata={"store_ids": [s.store_id for s in stores]},
        )

    # availability_poll --------------------------------------------------------------------

    def availability_poll(self) -> RunResult:
        """Poll every active product x polled store within the time budget (module doc)."""
        refreshed = False
        configured = self.settings.store_ids
        stored = self.store.stores(self.settings.brand)
        if not stored:
            # No store known yet: read the locator first (production gets the stores' names
            # and places from raw_stores). With DUBAI_ZARA_STORES set the poll goes on even
            # if the locator fails; without it there is nothing to poll.
            refreshed = True
            try:
                refresh = self.stores_refresh()
            except UndecatError:
                if not configured:
                    raise
                _log.warning("availability: the store locator failed; polling the configured")
            else:
                if refresh.status == RunStatus.FAILED and not configured:
                    return refresh
            stored = self.store.stores(self.settings.brand)
        store_ids = configured or tuple(s.store_id for s in stored)
        started = self.clock.monotonic()
        deadline = started + self.settings.run_seconds
        targets = self.store.poll_targets(self.settings.brand)
        state = _Poll()
        queue = iter(targets)
        workers = max(1, min(self.settings.concurrency, len(targets) or 1))
        with ThreadPoolExecutor(workers, thread_name_prefix="availability") as pool:
            for future in [
                pool.submit(self._worker, queue, store_ids, state, deadline) for _ in range(workers)
            ]:
                future.result()
        try:
            self._flush(state, everything=True)
        except OutageError as exc:
            state.stop, state.stop_reason = "outage", f"{type(exc).__name__}: {exc}"
        left = len(targets) - state.counts.taken
        return self._result(state, store_ids, started, left=left, refreshed=refreshed)

    def _worker(
        self,
        queue: Iterator[PollTarget],
        store_ids: Sequence[int],
        state: _Poll,
        deadline: float,
    ) -> None:
        while True:
            with state.lock:
                if state.stop is not None:
                    return
                if self.clock.monotonic() >= deadline:
                    state.stop = state.stop or "budget"
                    return
                target = next(queue, None)
            if target is None:
                return
            try:
                answers = self._ask(target, store_ids, state, deadline)
            except _StopRunError:
                return
            except ProductError as exc:
                with state.lock:
                    state.counts.add(taken=1, failed=1)
                    if len(state.reasons) < _REASONS_KEPT:
                        state.reasons.append(f"{target.external_id}: {exc}")
                _log.warning("availability of %s: %s", target.external_id, exc)
                continue
            records = records_for(target, store_ids, answers, self.clock.now())
            with state.lock:
                state.counts.add(taken=1, done=1)
                state.buffer.extend(records)
            try:
                self._flush(state, everything=False)
            except OutageError as exc:
                with state.lock:
                    state.stop, state.stop_reason = "outage", f"{type(exc).__name__}: {exc}"
                return

    def _ask(
        self, target: PollTarget, store_ids: Sequence[int], state: _Poll, deadline: float
    ) -> Mapping[str, Mapping[int, Sequence[SizeInStock]]]:
        """Every colour of ``target`` in every polled store, one request per store chunk."""
        answers: dict[str, dict[int, list[SizeInStock]]] = {}
        for colour, colour_product_id in target.colours:
            merged = answers.setdefault(colour, {})
            for chunk in store_chunks(store_ids):
                for store_id, sizes in self._request(
                    colour_product_id, chunk, state, deadline
                ).items():
                    merged.setdefault(store_id, []).extend(sizes)
        return answers

    def _request(
        self, colour_product_id: str, chunk: Sequence[int], state: _Poll, deadline: float
    ) -> Mapping[int, Sequence[SizeInStock]]:
        while True:
            with state.lock:
                if state.stop is not None:
                    raise _StopRunError
                state.counts.add(requests=1)
            try:
                answer = self.source.in_stock(colour_product_id, chunk)
            except BlockedError as exc:
                wait = self._blocked(state, exc)
                if self.clock.monotonic() + wait >= deadline:
                    with state.lock:
                        state.stop = state.stop or "budget"
                    raise _StopRunError from exc
                self.clock.sleep(wait)
                continue
            except ProductError:
                self._unblocked(state)
                raise
            except OutageError as exc:
                with state.lock:
                    state.stop, state.stop_reason = "outage", f"{type(exc).__name__}: {exc}"
                raise _StopRunError from exc
            self._unblocked(state)
            return answer

    def _blocked(self, state: _Poll, exc: BlockedError) -> float:
        with state.lock:
            state.counts.add(blocks=1)
            state.blocks_in_a_row += 1
            row = state.blocks_in_a_row
            if row >= self.settings.max_blocks:
                if state.stop is None:
                    state.stop = "blocked"
                    state.stop_reason = (
                        f"stopped after {row} anti-bot blocks in a row (HTTP 403): {exc}"
                    )
                raise _StopRunError from exc
        wait = block_wait(row, self.settings.block_backoff)
        _log.warning("availability: blocked (%d in a row), waiting %g s", row, wait)
        return wait

    @staticmethod
    def _unblocked(state: _Poll) -> None:
        with state.lock:
            state.blocks_in_a_row = 0

    def _flush(self, state: _Poll, *, everything: bool) -> None:
        with state.lock:
            if not state.buffer or (
                not everything and len(state.buffer) < self.settings.batch_rows
            ):
                return
            batch, state.buffer = state.buffer, []
        try:
            written = self.store.write(batch)
        except OutageError:
            with state.lock:
                state.buffer = batch + state.buffer  # kept for the final flush attempt
            raise
        with state.lock:
            state.counts.add(rows=written)

    def _result(
        self,
        state: _Poll,
        store_ids: Sequence[int],
        started: float,
        *,
        left: int,
        refreshed: bool,
    ) -> RunResult:
        try:
            coverage: float | None = self.store.coverage(
                self.settings.brand, self.clock.now().date()
            )
        except UndecatError:
            coverage = None
        counts = state.counts
        metadata = {
            "brand": self.settings.brand,
            "stores": list(store_ids),
            "fetched": counts.done,
            "errors": counts.failed,
            "blocks": counts["blocks"],
            "requests": counts["requests"],
            "rows": counts["rows"],
            "left": max(0, left),
            "coverage": coverage,
            "stores_refreshed": refreshed,
            "stopped": state.stop,
            "error_reasons": state.reasons,
            "seconds": round(self.clock.monotonic() - started, 3),
        }
        if state.stop == "outage":
            status, message = RunStatus.FAILED, state.stop_reason
        elif state.stop == "blocked":
            status, message = RunStatus.PARTIAL, state.stop_reason
        elif counts.failed:
            status = RunStatus.PARTIAL
            message = f"{counts.failed} product(s) had an unreadable answer"
        else:
            status, message = RunStatus.SUCCESS, None
        return RunResult(
            status=status,
            records_fetched=counts.done,
            records_updated=counts["rows"],
            records_errors=counts.failed,
            error_message=message,
            metadata=metadata,
            items=counts.items(),
        )


def availability_retention(
    store: AvailabilityStore, clock: Clock, *, days: int = 90, batch: int = 5000
) -> RunResult:
    """Delete rows older than ``days`` (``AVAILABILITY_RETENTION_DAYS``), a batch at a time.

    Each batch is its own short transaction and skips rows another transaction holds, so a
    poll writing at the same time is never blocked (it writes today's rows anyway).
    """
    cutoff = clock.now() - timedelta(days=days)
    deleted = batches = 0
    while True:
        gone = store.delete_older_than(cutoff, batch)
        deleted += gone
        batches += 1
        if gone < batch:
            break
    return RunResult(
        status=RunStatus.SUCCESS,
        records_updated=deleted,
        metadata={"deleted": deleted, "batches": batches, "cutoff": cutoff.isoformat()},
    )
