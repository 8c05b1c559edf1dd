"""Collect: one brand's catalog from its source (an Apify task or an export) into staging.

``apify_<brand>`` starts the run, streams its items, maps each one, and upserts them in
batches stamped with the job's start time. Then, and only after a *complete, successful*
run that returned at least half of the brand's active products, the products the run did
not list are delisted (their ``scraped_at`` is older than the stamp). Any other run delists
nothing and says why in the run's metadata.

A bad item is rejected alone (with its reason, in ``records_errors``); the same id twice in
one run keeps the first and counts the repeat as an error. A batch the database refuses for
one row's sake is split until the offending item is found and rejected, so one surprise
never costs the other 999. Each batch is written in a thread of its own while the job maps
the next one (one batch in flight at most). A run that ended FAILED / TIMED-OUT / ABORTED, or
that we gave up waiting for (RUNNING), keeps the items it returned and is logged ``failed``
with the run id, status and end reason (Apify's status message, ``end_reason`` in the run's
metadata and in its error text); so is an outage in the middle of the stream (the batches
before it are kept).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any

import attrs

from undecat.domain.models import ProductDraft, RunCounts, RunResult, UpsertResult, source_for
from undecat.domain.status import RunStatus
from undecat.errors import InvalidItemError, OutageError, UndecatError
from undecat.jobs.runlog import StopToken
from undecat.ports import CatalogRun, CatalogSource, CatalogStore, Clock

__all__ = ["DEFAULT_BATCH_SIZE", "MAX_REASONS_KEPT", "CollectJob"]

_log = logging.getLogger("undecat.jobs.collect")

#: Drafts per upsert statement.
DEFAULT_BATCH_SIZE = 1000
#: How many rejected items are listed (with reasons) in the run's metadata.
MAX_REASONS_KEPT = 50
#: Only this many rejections are also written to the log, to keep it readable.
_LOGGED_REJECTIONS = 10


@attrs.define
class _Rejections:
    """The counts of one collection run and the reasons of its first rejected items.

    ``taken`` items were fetched, ``done`` written, ``failed`` rejected. Items are mapped in
    the job's thread while the previous batch is written in the writer's: both may reject.
    """

    counts: RunCounts = attrs.Factory(
        lambda: RunCounts.of("duplicates", "new", "updated", "unchanged", "photos_changed")
    )
    reasons: list[dict[str, Any]] = attrs.Factory(list)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, repr=False)

    def reject(self, position: int, product: str | None, reason: str) -> None:
        with self._lock:
            self.counts.add(failed=1)
            if len(self.reasons) < MAX_REASONS_KEPT:
                self.reasons.append({"item": position, "id": product, "reason": reason})
            logged = self.counts.failed <= _LOGGED_REJECTIONS
        if logged:
            _log.warning("item #%d (id %s) rejected: %s", position, product, reason)

    def written(self, count: int, result: UpsertResult) -> None:
        self.counts.add(
            done=count,
            new=result.new,
            updated=result.updated,
            unchanged=result.unchanged,
            photos_changed=result.photos_changed,
        )


class _Writer:
    """Writes batches one at a time in a thread of its own, while the next batch is mapped.

    Mapping is the job's CPU, the upsert mostly the database's: overlapped, a run takes the
    larger of the two rather than their sum. At most one batch is in flight; handing over
    the next one first waits for it, and re-raises what it raised (an outage), so a failed
    write stops the stream one batch later at the latest, with every earlier batch kept.
    """

    def __init__(self, write: Callable[[list[tuple[int, ProductDraft]]], None]) -> None:
        self._write = write
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="collect-upsert")
        self._pending: Future[None] | None = None

    def submit(self, batch: list[tuple[int, ProductDraft]]) -> None:
        """Start writing ``batch`` once the previous one is written."""
        self.wait()
        self._pending = self._executor.submit(self._write, batch)

    def wait(self) -> None:
        """Wait for the batch in flight; raise what its write raised."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self, *, failing: bool) -> None:
        """Wait for the batch in flight (its error is dropped when the run already failed)."""
        try:
            if failing:
                with contextlib.suppress(Exception):
                    self.wait()
            else:
                self.wait()
        finally:
            self._executor.shutdown(wait=True)


@attrs.frozen
class CollectJob:
    """Collects one brand: the work callable of the ``apify_<brand>`` job."""

    brand: str
    source: CatalogSource
    store: CatalogStore
    mapper: Callable[[Any], ProductDraft] = attrs.field(repr=False)
    clock: Clock = attrs.field(repr=False)
    source_kind: str = "apify"
    batch_size: int = DEFAULT_BATCH_SIZE
    delist: bool = True
    #: Set on SIGTERM / SIGINT: what was read is stored, the rest is not read, nothing is
    #: delisted (the item list is incomplete), and the run is logged ``interrupted``.
    stop: StopToken | None = attrs.field(default=None, repr=False)

    def __call__(self) -> RunResult:
        """Run the collection once and return its result (for ``scraper_logs``)."""
        source = source_for(self.brand)
        stamp = self.clock.now()
        active_before = self.store.count_active(source)
        run = self.source.start(self.brand)
        rejections = _Rejections()
        metadata: dict[str, Any] = {
            "brand": self.brand,
            "source": self.source_kind,
            "apify_run_id": run.run_id,
            "active_before": active_before,
        }
        try:
            self._stream(run, stamp, rejections)
        except OutageError as exc:
            status = run.status()
            metadata.update(self._counts(rejections), apify_status=status, delisted=0)
            metadata["end_reason"] = run.end_reason()
            metadata["delisting_skipped"] = "the run was interrupted by an outage"
            return self._result(RunStatus.FAILED, rejections, metadata, run, f"{exc}")
        status = run.status()
        problem = run.end_reason()
        metadata.update(self._counts(rejections), apify_status=status, end_reason=problem)
        if self.stop is not None and self.stop.requested:
            metadata.update(delisted=0, delisting_skipped="the run was stopped before its end")
            return self._result(RunStatus.SUCCESS, rejections, metadata, run, None)
        reason = self._no_delisting_reason(status, rejections.counts.done, active_before)
        delisted = 0
        if reason is None:
            delisted = self.store.delist_missing(source, stamp)
        else:
            metadata["delisting_skipped"] = reason
        metadata["delisted"] = delisted
        if status != "SUCCEEDED":
            label = (
                f"{self.source_kind} run {run.run_id}" if run.run_id else f"{self.source_kind} run"
            )
            what = f"{label} ended {status}"
            return self._result(
                RunStatus.FAILED,
                rejections,
                metadata,
                run,
                f"{what}: {problem}" if problem else what,
            )
        outcome = RunStatus.PARTIAL if rejections.counts.failed else RunStatus.SUCCESS
        return self._result(outcome, rejections, metadata, run, None)

    def _stream(self, run: CatalogRun, stamp: datetime, rejections: _Rejections) -> None:
        writer = _Writer(lambda batch: self._flush(batch, stamp, rejections))
        failing = True
        try:
            self._map_all(run, rejections, writer)
            failing = False
        finally:
            writer.close(failing=failing)

    def _map_all(self, run: CatalogRun, rejections: _Rejections, writer: _Writer) -> None:
        seen: set[str] = set()  # ids of this run: a repeat keeps the first occurrence
        batch: list[tuple[int, ProductDraft]] = []
        for position, item in enumerate(run.items(), start=1):
            if self.stop is not None and self.stop.requested:
                break  # what is batched is stored below
            rejections.counts.add(taken=1)
            try:
                draft = self.mapper(item)
            except InvalidItemError as exc:
                rejections.reject(position, exc.product, str(exc))
                continue
            if draft.external_id in seen:
                rejections.counts.add(duplicates=1)
                rejections.reject(
                    position, draft.external_id, "the same id appeared earlier in this run"
                )
                continue
            seen.add(draft.external_id)
            batch.append((position, draft))
            if len(batch) >= self.batch_size:
                writer.submit(batch)
                batch = []
        if batch:
            writer.submit(batch)

    def _flush(
        self, batch: Sequence[tuple[int, ProductDraft]], stamp: datetime, rejections: _Rejections
    ) -> None:
        try:
            result = self.store.upsert_products([draft for _, draft in batch], stamp)
        except OutageError:
            raise
        except UndecatError as exc:
            if len(batch) == 1:
                position, draft = batch[0]
                rejections.reject(position, draft.external_id, f"the database refused it: {exc}")
                return
            # One row spoiled the statement: halve until it is found, store the rest.
            middle = len(batch) // 2
            self._flush(batch[:middle], stamp, rejections)
            self._flush(batch[middle:], stamp, rejections)
            return
        rejections.written(len(batch), result)

    def _no_delisting_reason(self, status: str, valid: int, active_before: int) -> str | None:
        if not self.delist:
            return "delisting was turned off for this run (--no-delist)"
        if status != "SUCCEEDED":
            return f"the run ended {status}, not SUCCEEDED: its item list may be incomplete"
        if valid * 2 < active_before:
            return (
                f"only {valid} valid items, fewer than half of the brand's {active_before}"
                " active products: suspiciously small"
            )
        return None

    @staticmethod
    def _counts(rejections: _Rejections) -> dict[str, Any]:
        return {
            "valid": rejections.counts.done,
            "unchanged": rejections.counts["unchanged"],
            "photos_changed": rejections.counts["photos_changed"],
            "duplicates": rejections.counts["duplicates"],
            "rejected": rejections.reasons,
        }

    @staticmethod
    def _result(
        status: str,
        rejections: _Rejections,
        metadata: dict[str, Any],
        run: CatalogRun,
        error: str | None,
    ) -> RunResult:
        return RunResult(
            status=status,
            records_fetched=rejections.counts.taken,
            records_new=rejections.counts["new"],
            records_updated=rejections.counts["updated"],
            records_errors=rejections.counts.failed,
            error_message=error,
            metadata=metadata,
            run_id=run.run_id,
            items=rejections.counts.items(),
        )
