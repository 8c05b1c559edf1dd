"""``sync_to_production`` (scraper host, hourly :10): verified staging products into production.

Products pending sync are claimed through the ``sync`` work queue like every stage. Each
batch is read in full from staging and judged by :func:`undecat.domain.production.verify`:

* **ready** products are upserted into ``catalog.products`` (one bounded transaction per
  batch), then marked ``synced``;
* **delisted** products become ``is_active = false`` in production (the row is kept), then
  are marked ``synced``;
* products that **cannot pass** are marked ``skipped`` with the reason;
* products **not ready yet** (photos or collage on their way) are held until the end of the
  run and handed back untouched, so they stay ``pending`` and production keeps their last
  verified version.

A batch's marks are written with one ``complete_many`` (fenced claim by claim, like every
stage's results). Production is always written before staging is marked: a crash between
the two leaves the rows pending (their lease lapses), and the next run writes the same
values again -- which changes nothing, because every production write is guarded by
``IS DISTINCT FROM``. After the products, the stores and the latest availability of the
polled stores are copied, the availability a page of rows at a time (memory stays flat:
47,000 products in 10 stores held at once took 767 MiB).

An outage of either database stops the run: every claim still held is handed back (nothing
is marked), the run is logged ``failed`` and the runner exits non-zero.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

import attrs

from undecat.domain.models import Claim, RunCounts, RunResult
from undecat.domain.production import CatalogEntry, Verdict, verify
from undecat.domain.stages import ProductionDone
from undecat.domain.status import RunStatus, SyncStatus
from undecat.errors import OutageError, UndecatError
from undecat.ports import Clock, ProductionCatalog, SyncSource, WorkQueue

__all__ = ["AVAILABILITY_SLACK", "ProductionSync"]

_log = logging.getLogger("undecat.jobs.sync")

#: Availability rows are copied from a little before the newest answer production holds: a
#: poll writes its rows in batches, so a row fetched earlier may be committed later.
AVAILABILITY_SLACK = timedelta(hours=2)


@attrs.frozen
class ProductionSync:
    """``sync_to_production`` over the sync queue, staging and production."""

    queue: WorkQueue
    source: SyncSource
    production: ProductionCatalog
    clock: Clock = attrs.field(repr=False)
    owner: str
    batch_size: int = 500
    lease: timedelta = timedelta(hours=1)

    def run(self) -> RunResult:
        """Sync every claimable pending product, then stores and availability."""
        tally = RunCounts.of(
            "deactivated",
            "products_changed",
            "stores_changed",
            "availability_changed",
            "availability_rows",
            skipping=("not_ready", "lease_lost"),
        )
        held: list[Claim] = []
        started = self.clock.monotonic()
        try:
            while claims := self.queue.claim(self.owner, self.batch_size, self.lease):
                tally.add(taken=len(claims))
                self._batch(claims, tally, held)
            tally.add(stores_changed=self.production.upsert_stores(self.source.all_stores()))
            mark = self.production.availability_watermark()
            since = None if mark is None else mark - AVAILABILITY_SLACK
            # Page by page: the rows of every store and product do not fit in memory at once.
            for records in self.source.latest_availability(since):
                tally.add(
                    availability_rows=len(records),
                    availability_changed=self.production.upsert_availability(records),
                )
        except UndecatError as exc:
            self._release(held)
            return self._result(tally, started, exc)
        self._release(held)
        return self._result(tally, started, None)

    def _batch(self, claims: Sequence[Claim], tally: RunCounts, held: list[Claim]) -> None:
        try:
            entries = {e.staging_id: e for e in self.source.entries([c.product.id for c in claims])}
            ready: list[tuple[Claim, CatalogEntry]] = []
            delisted: list[tuple[Claim, CatalogEntry]] = []
            skipped: list[tuple[Claim, str]] = []
            for claim in claims:
                entry = entries.get(claim.product.id)
                if entry is None:  # gone from staging meanwhile: nothing to send
                    held.append(claim)
                    continue
                verdict = verify(entry)
                if verdict.verdict is Verdict.READY:
                    ready.append((claim, entry))
                elif verdict.verdict is Verdict.DELISTED:
                    delisted.append((claim, entry))
                elif verdict.verdict is Verdict.SKIP:
                    skipped.append((claim, verdict.reason or "sync: skipped"))
                else:
                    held.append(claim)
                    tally.add(not_ready=1)
            # Production first: staging is marked only once production holds the values.
            tally.add(products_changed=self.production.upsert_products([e for _, e in ready]))
            tally.add(deactivated=self.production.deactivate([e for _, e in delisted]))
            marks = [(c, ProductionDone(SyncStatus.SYNCED)) for c, _ in (*ready, *delisted)]
            marks += [(c, ProductionDone(SyncStatus.SKIPPED, reason)) for c, reason in skipped]
            # One statement (two when some are skipped) for the whole batch.
            written = self.queue.complete_many(marks) if marks else []
            for (_, outcome), kept in zip(marks, written, strict=True):
                if kept:
                    if outcome.status is SyncStatus.SYNCED:
                        tally.add(done=1)
                    else:
                        tally.add(skipped=1)
                else:
                    tally.add(lease_lost=1)
        except UndecatError:
            # Hand back the whole batch: rows already completed have no owner any more, so
            # the release leaves them alone.
            holding = {c.product.id for c in held}
            held.extend(c for c in claims if c.product.id not in holding)
            raise

    def _release(self, claims: Sequence[Claim]) -> None:
        if not claims:
            return
        try:
            self.queue.release(claims)
        except OutageError as exc:  # the database is gone too: the leases lapse on their own
            _log.error("sync: could not hand back %d claim(s): %s", len(claims), exc)

    def _result(self, tally: RunCounts, started: float, error: UndecatError | None) -> RunResult:
        metadata = {
            "claimed": tally.taken,
            "synced": tally.done,
            "skipped": tally.skipped,
            **tally.detail,
            "seconds": round(self.clock.monotonic() - started, 3),
        }
        return RunResult(
            status=RunStatus.FAILED if error is not None else RunStatus.SUCCESS,
            records_fetched=tally.taken,
            records_updated=tally["products_changed"] + tally["deactivated"],
            records_new=tally.done,
            records_errors=0,
            error_message=None if error is None else f"{type(error).__name__}: {error}",
            metadata=metadata,
            items=tally.items(),
        )
