"""The Ximilar stage: ``ximilar_sync`` and ``ximilar_retry`` of the ximilar_sync host.

One run claims pilot products batch by batch and, per batch, across products:

1. deletes stale records (photos that changed after a re-collect; every record of a
   delisted product), ten ids per request;
2. for products claimed before without finishing (``attempt > 1``: a crash or an outage
   between the HTTP call and the database update), asks the collection which of their
   records it already holds, so those are never inserted -- and paid for -- twice;
3. writes down the ids of the records it is about to insert (``ximilar_pending_ids``, by the
   :class:`~undecat.ports.XimilarLedger`, only for rows it still leases), then inserts
   them, ten per request, filled across products;
4. writes each product's confirmed records and status (``partial`` / ``synced``), or marks
   it ``error`` with the reason Ximilar gave for a refused record -- the batch's completions
   in one ``complete_many``, its failures in one ``fail_many`` -- then forgets the noted
   ids of the products written (a failed product keeps them).

Ids noted but never confirmed -- the process died between an insert and step 4 -- are not
lost: should the product's photos change (or the product be delisted) before a later run
adopts them, the database moves them among the known record ids (migration 0010) and the
next run deletes them as stale.

An outage stops the run: products whose records were already sent keep their attempt
count (their lease is handed back at once, counted) so the next run checks them first;
the others are released untouched. In a dry run nothing is completed: every claim is
released at the end, so statuses stay exactly as they were.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

import attrs

from undecat.domain.models import Claim, RunCounts, RunResult
from undecat.domain.stages import XimilarProgress
from undecat.domain.status import RunStatus, XimilarStatus
from undecat.domain.ximilar import (
    MAX_RECORDS_PER_REQUEST,
    Confirmed,
    SyncPlan,
    XimilarRecord,
    chunked,
    plan_sync,
    settle,
)
from undecat.errors import OutageError
from undecat.jobs.runlog import StopToken
from undecat.ports import VisualIndex, WorkQueue, XimilarLedger
from undecat.redact import redact_url

__all__ = ["ximilar_retry", "ximilar_sync"]

_log = logging.getLogger("undecat.jobs.ximilar")

_PILOT = "pilot"


#: The run's further counts, by their ``scraper_logs`` metadata names (see :func:`_metadata`).
_COUNTS = (
    "synced",
    "partial",
    "removed",
    "inserted",
    "adopted",
    "deleted",
    "insert_requests",
    "delete_requests",
    "get_requests",
)


def _metadata(tally: RunCounts, *, dry_run: bool) -> dict[str, object]:
    """The run's metadata: what was done and what it cost."""
    return {
        "dry_run": dry_run,
        "products_synced": tally["synced"],
        "products_partial": tally["partial"],
        "products_removed": tally["removed"],
        "products_skipped": tally.skipped,
        "records_inserted": tally["inserted"],
        "records_adopted": tally["adopted"],
        "records_deleted": tally["deleted"],
        "requests": {
            "insert": tally["insert_requests"],
            "delete": tally["delete_requests"],
            "get": tally["get_requests"],
        },
        "credits": tally["inserted"],
    }


def ximilar_sync(
    queue: WorkQueue,
    index: VisualIndex,
    *,
    owner: str,
    lease: timedelta,
    batch_size: int,
    dry_run: bool = False,
    ledger: XimilarLedger | None = None,
    photo_base: str | None = None,
    stop: StopToken | None = None,
) -> RunResult:
    """Bring every eligible product's records in the collection to its target; see module.

    ``ledger`` notes record ids before they are sent; without one (unit tests), ids are
    sent unnoted. ``photo_base`` is the object store's public base URL: a product whose
    photo URL is not under it (a row another role forged) fails with a reason and is
    never sent. A ``stop`` request is honoured between batches (one batch is a few requests).
    """
    tally = RunCounts.of(*_COUNTS)
    held: list[Claim] = []  # dry run: claims kept until the end, then released
    seen: set[int] = set()
    try:
        while not (stop is not None and stop.requested) and (
            claims := queue.claim(owner, batch_size, lease)
        ):
            again = [c for c in claims if c.product.id in seen]
            fresh = [c for c in claims if c.product.id not in seen]
            if again:  # partial products completed earlier in this run: next run
                queue.release(again)
            if not fresh:
                break
            seen.update(c.product.id for c in fresh)
            tally.add(taken=len(fresh))
            _Batch(
                queue, index, fresh, tally, dry_run=dry_run, ledger=ledger, photo_base=photo_base
            ).run()
            if dry_run:
                held.extend(fresh)
    finally:
        queue.release(held)
    status = RunStatus.PARTIAL if tally.failed else RunStatus.SUCCESS
    return RunResult(
        status=status,
        records_fetched=tally.taken,
        records_new=tally["inserted"],
        records_updated=tally.done,
        records_errors=tally.failed,
        metadata=_metadata(tally, dry_run=dry_run),
        items=tally.items(),
    )


def ximilar_retry(
    queue: WorkQueue,
    index: VisualIndex,
    *,
    owner: str,
    lease: timedelta,
    batch_size: int,
    dry_run: bool = False,
    ledger: XimilarLedger | None = None,
    photo_base: str | None = None,
    stop: StopToken | None = None,
) -> RunResult:
    """Send ``error`` products with attempts left back to the queue, then sync."""
    requeued = 0 if dry_run else queue.requeue_failed()
    result = ximilar_sync(
        queue,
        index,
        owner=owner,
        lease=lease,
        batch_size=batch_size,
        dry_run=dry_run,
        ledger=ledger,
        photo_base=photo_base,
        stop=stop,
    )
    return attrs.evolve(result, metadata={**result.metadata, "requeued": requeued})


class _Batch:
    """One claimed batch, worked across products."""

    def __init__(
        self,
        queue: WorkQueue,
        index: VisualIndex,
        claims: Sequence[Claim],
        tally: RunCounts,
        *,
        dry_run: bool,
        ledger: XimilarLedger | None = None,
        photo_base: str | None = None,
    ) -> None:
        self._queue = queue
        self._index = index
        self._ledger = None if dry_run else ledger
        self._written: list[int] = []  # products whose outcome was written
        self._tally = tally
        self._dry_run = dry_run
        self._claims: list[Claim] = []
        self._plans: dict[int, SyncPlan] = {}
        for claim in claims:
            plan = plan_sync(claim.product)
            if not plan.removal and claim.product.index_scope != _PILOT:
                # Never sent: only pilot products belong in the collection.
                _log.warning("ximilar: %s is not a pilot product", claim.product.external_id)
                queue.release([claim])
                tally.add(skipped=1)
                continue
            foreign = _foreign_photo(plan, photo_base)
            if foreign is not None:
                _log.warning("ximilar: %s %s", claim.product.external_id, foreign)
                if not dry_run:
                    queue.fail(claim, f"ximilar: {foreign}; nothing was sent")
                tally.add(failed=1)
                continue
            self._claims.append(claim)
            self._plans[claim.product.id] = plan
        self._deleted: set[str] = set()
        self._inserted: set[str] = set()
        self._reasons: dict[str, str] = {}
        self._sent: set[int] = set()  # products with an insert request already sent

    def run(self) -> None:
        """Delete, check, insert, then write every product's outcome."""
        try:
            self._delete_stale()
            self._adopt_unfinished()
            self._insert()
        except OutageError:
            self._give_back(self._claims)
            raise
        if self._dry_run:
            return
        self._finish()
        if self._ledger is not None:
            self._ledger.clear_pending(self._written)

    def _delete_stale(self) -> None:
        stale = [rid for c in self._claims for rid in self._plans[c.product.id].stale_ids]
        for chunk in chunked(stale, MAX_RECORDS_PER_REQUEST):
            self._tally.add(delete_requests=1)
            gone = self._index.delete(list(chunk))
            self._deleted |= gone
            self._note_reasons(gone)

    def _adopt_unfinished(self) -> None:
        ids = [
            record.record_id
            for claim in self._claims
            if claim.attempt > 1
            for record in self._plans[claim.product.id].to_insert
        ]
        for chunk in chunked(ids, MAX_RECORDS_PER_REQUEST):
            self._tally.add(get_requests=1)
            held = self._index.existing(list(chunk))
            self._inserted |= held
            self._tally.add(adopted=len(held))

    def _insert(self) -> None:
        pending = [
            (claim.product.id, record)
            for claim in self._claims
            for record in self._plans[claim.product.id].to_insert
            if record.record_id not in self._inserted
        ]
        if self._ledger is not None and pending:
            # Written down before sending, so a crash cannot leave records no row knows of.
            # A product whose lease was lost meanwhile is not sent (nor noted).
            ids: dict[int, list[str]] = {}
            for product_id, record in pending:
                ids.setdefault(product_id, []).append(record.record_id)
            noted = self._ledger.note_pending(self._claims[0].owner, ids)
            pending = [(pid, record) for pid, record in pending if pid in noted]
        for chunk in chunked(pending, MAX_RECORDS_PER_REQUEST):
            self._sent.update(product_id for product_id, _ in chunk)
            self._tally.add(insert_requests=1)
            confirmed = self._index.insert([record.fields() for _, record in chunk])
            self._inserted |= confirmed
            self._tally.add(inserted=len(confirmed))
            self._note_reasons(confirmed)

    def _note_reasons(self, reply: set[str]) -> None:
        if isinstance(reply, Confirmed):
            self._reasons.update(reply.reasons)

    def _problems(self, plan: SyncPlan) -> list[str]:
        """Why the product failed: records Ximilar refused, stale records it kept."""
        return [
            f"photo {n + 1} ({record.url}) was refused: {self._reasons[record.record_id]}"
            for n, record in _numbered(plan)
            if record.record_id not in self._inserted and record.record_id in self._reasons
        ] + [
            f"stale record {rid} could not be deleted: {self._reasons[rid]}"
            for rid in plan.stale_ids
            if rid not in self._deleted and rid in self._reasons
        ]

    def _finish(self) -> None:
        """Write every product's outcome: one ``complete_many``, then one ``fail_many``.

        An outage hands back the products of the call it stopped (and of any call not made
        yet): nothing of theirs was written.
        """
        done: list[tuple[Claim, XimilarProgress]] = []
        failed: list[tuple[Claim, str]] = []
        for claim in self._claims:
            plan = self._plans[claim.product.id]
            problems = self._problems(plan)
            if problems:
                _log.warning("ximilar: %s failed: %s", plan.external_id, "; ".join(problems))
                failed.append((claim, "ximilar: " + "; ".join(problems)))
            else:
                done.append((claim, settle(plan, inserted=self._inserted, deleted=self._deleted)))
        try:
            written = self._queue.complete_many(done) if done else []
        except OutageError:
            self._give_back(self._claims)
            raise
        for (claim, progress), held in zip(done, written, strict=True):
            self._completed(claim, progress, held=held)
        try:
            if failed:
                self._queue.fail_many(failed)
        except OutageError:
            self._give_back([claim for claim, _ in failed])
            raise
        self._tally.add(failed=len(failed))

    def _completed(self, claim: Claim, progress: XimilarProgress, *, held: bool) -> None:
        """Count one product's written outcome (or log its lost lease)."""
        plan = self._plans[claim.product.id]
        self._tally.add(deleted=sum(1 for rid in plan.stale_ids if rid in self._deleted))
        if not held:
            _log.warning(
                "ximilar: lost the lease of %s; its result is not written", plan.external_id
            )
            return
        self._written.append(claim.product.id)
        self._tally.add(done=1)
        if plan.removal:
            self._tally.add(removed=1)
        elif progress.status == XimilarStatus.SYNCED:
            self._tally.add(synced=1)
        else:
            self._tally.add(partial=1)

    def _give_back(self, claims: Sequence[Claim]) -> None:
        """Outage: hand ``claims`` back; those with records in flight keep their attempt."""
        in_flight = [c for c in claims if c.product.id in self._sent]
        untouched = [c for c in claims if c.product.id not in self._sent]
        try:
            if in_flight:
                # A lease that ends now, with the attempt counted: the next run sees
                # attempt > 1 and asks the collection before inserting again.
                self._queue.extend(in_flight, timedelta(0))
            self._queue.release(untouched)
        except OutageError as exc:
            # The database is gone too: the leases lapse on their own.
            _log.warning("ximilar: could not hand back %d claim(s): %s", len(claims), exc)


def _foreign_photo(plan: SyncPlan, photo_base: str | None) -> str | None:
    """Why ``plan`` may not be sent: a photo URL outside the object store, or None."""
    if photo_base is None or plan.removal:
        return None
    prefix = photo_base.rstrip("/") + "/"
    for slot in plan.current:
        if not slot.url.startswith(prefix) or "/../" in slot.url[len(prefix) - 1 :]:
            return (
                f"photo {slot.index + 1} ({redact_url(slot.url)}) is not under the object"
                f" store's public base URL {redact_url(prefix)}"
            )
    return None


def _numbered(plan: SyncPlan) -> list[tuple[int, XimilarRecord]]:
    positions = {slot.record_id: slot.index for slot in plan.current}
    return [(positions.get(r.record_id, 0), r) for r in plan.to_insert]
