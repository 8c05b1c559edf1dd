"""The collect job over in-memory fakes of its ports: batching, rejections, delisting rules."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest

from tests.strategies import zara_item
from undecat.adapters.apify import mapper_for
from undecat.domain.models import ProductDraft, UpsertResult
from undecat.errors import DatabaseUnavailableError, RemoteServiceError, UndecatError
from undecat.jobs.collect import CollectJob


@attrs.define
class FakeClock:
    moment: datetime = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.moment

    def monotonic(self) -> float:
        return 0.0

    def sleep(self, seconds: float) -> None:
        self.moment += timedelta(seconds=seconds)


@attrs.define
class FakeRun:
    entries: list[Any]
    final: str = "SUCCEEDED"
    run_id: str | None = "run1"
    outage_after: int | None = None
    reason: str | None = None

    def items(self) -> Iterator[Any]:
        for n, item in enumerate(self.entries):
            if n == self.outage_after:
                raise RemoteServiceError("Apify answered 503 after 5 attempts")
            yield item

    def status(self) -> str:
        return self.final

    def end_reason(self) -> str | None:
        return self.reason


@attrs.define
class FakeSource:
    run: FakeRun
    started: list[str] = attrs.Factory(list)

    def start(self, brand: str) -> FakeRun:
        self.started.append(brand)
        return self.run


@attrs.define
class FakeStore:
    """raw_products in a dict; a draft named POISON makes its whole statement fail."""

    rows: dict[tuple[str, str], dict[str, Any]] = attrs.Factory(dict)
    statements: list[int] = attrs.Factory(list)
    down_after: int | None = None

    def upsert_products(self, drafts: Sequence[ProductDraft], scraped_at: datetime) -> UpsertResult:
        if self.down_after is not None and len(self.statements) >= self.down_after:
            raise DatabaseUnavailableError("database went away")
        self.statements.append(len(drafts))
        if any(d.name == "POISON" for d in drafts):
            raise UndecatError("database error: value too long")
        new = updated = unchanged = 0
        for d in drafts:
            key = (d.source, d.external_id)
            old = self.rows.get(key)
            if old is None:
                new += 1
            elif old["draft"] != d or old["delisted"]:
                updated += 1
            else:
                unchanged += 1
            self.rows[key] = {"draft": d, "scraped_at": scraped_at, "delisted": False}
        return UpsertResult(new=new, updated=updated, unchanged=unchanged)

    def count_active(self, source: str) -> int:
        return sum(1 for (s, _), r in self.rows.items() if s == source and not r["delisted"])

    def delist_missing(self, source: str, seen_since: datetime) -> int:
        gone = [
            r
            for (s, _), r in self.rows.items()
            if s == source and not r["delisted"] and r["scraped_at"] < seen_since
        ]
        for r in gone:
            r["delisted"] = True
        return len(gone)

    def delisted(self) -> set[str]:
        return {e for (_, e), r in self.rows.items() if r["delisted"]}


def job(run: FakeRun, store: FakeStore, clock: FakeClock, **options: Any) -> CollectJob:
    return CollectJob(
        brand="zara",
        source=FakeSource(run),
        store=store,
        mapper=mapper_for("zara"),
        clock=clock,
        **options,
    )


def items(*ids: int) -> list[Any]:
    return [zara_item(n) for n in ids]


def test_items_are_upserted_in_batches_and_counted() -> None:
    """2,500 items go in as statements of at most 1,000; fetched/new are counted."""
    store, clock = FakeStore(), FakeClock()
    result = job(FakeRun(items(*range(1, 2501))), store, clock)()
    assert store.statements == [1000, 1000, 500]
    assert (result.status, result.records_fetched, result.records_new) == ("success", 2500, 2500)
    assert result.run_id == "run1"
    assert result.metadata["apify_status"] == "SUCCEEDED"
    assert all(r["scraped_at"] == clock.moment for r in store.rows.values())


def test_rejected_items_and_duplicates_are_counted_and_the_rest_stored() -> None:
    """Bad items and repeated ids are errors with reasons; every good item is stored."""
    store = FakeStore()
    entries = [*items(1, 2), {"id": 3}, zara_item(2, name="repeat"), zara_item(4, price="9")]
    result = job(FakeRun(entries), store, FakeClock())()
    assert result.status == "partial"
    assert (result.records_fetched, result.records_new, result.records_errors) == (5, 2, 3)
    reasons = {r["item"]: r["reason"] for r in result.metadata["rejected"]}
    assert "no name" in reasons[3]
    assert "earlier in this run" in reasons[4]
    assert "price" in reasons[5]
    assert result.metadata["duplicates"] == 1
    assert store.rows[("apify_zara", "2")]["draft"].name != "repeat"  # the first one is kept


def test_a_row_the_database_refuses_is_isolated() -> None:
    """One draft that fails its statement is found by halving; the other 9 are stored."""
    store = FakeStore()
    entries = items(*range(1, 11))
    entries[6] = zara_item(7, name="POISON")
    result = job(FakeRun(entries), store, FakeClock())()
    assert len(store.rows) == 9
    assert ("apify_zara", "7") not in store.rows
    assert result.records_errors == 1
    assert "database refused" in result.metadata["rejected"][0]["reason"]


def test_complete_run_delists_the_missing() -> None:
    """A successful run of at least half the active products delists the ones it lacks."""
    store, clock = FakeStore(), FakeClock()
    job(FakeRun(items(1, 2, 3, 4)), store, clock)()
    clock.sleep(7 * 86400)
    result = job(FakeRun(items(1, 2, 3)), store, clock)()
    assert store.delisted() == {"4"}
    assert result.metadata["delisted"] == 1
    assert "delisting_skipped" not in result.metadata


@pytest.mark.parametrize("final", ["FAILED", "TIMED-OUT", "ABORTED", "RUNNING"])
def test_unsuccessful_run_stores_but_delists_nothing(final: str) -> None:
    """A run that did not succeed keeps its items, delists nothing, and is logged failed."""
    store, clock = FakeStore(), FakeClock()
    job(FakeRun(items(1, 2, 3)), store, clock)()
    clock.sleep(60)
    result = job(FakeRun(items(1, 5), final=final), store, clock)()
    assert store.delisted() == set()
    assert ("apify_zara", "5") in store.rows
    assert result.status == "failed"
    assert result.error_message == f"apify run run1 ended {final}"
    assert result.metadata["apify_status"] == final
    assert final in result.metadata["delisting_skipped"]
    assert result.records_new == 1


def test_small_run_delists_nothing() -> None:
    """A successful run returning fewer than half the active products delists nothing."""
    store, clock = FakeStore(), FakeClock()
    job(FakeRun(items(*range(1, 11))), store, clock)()
    clock.sleep(60)
    result = job(FakeRun(items(1, 2, 3, 4) + [{"id": 99}] * 3), store, clock)()
    assert store.delisted() == set()
    assert "fewer than half" in result.metadata["delisting_skipped"]
    exactly_half = job(FakeRun(items(1, 2, 3, 4, 5)), store, clock)()
    assert exactly_half.metadata["delisted"] == 5


def test_no_delist_option_is_respected() -> None:
    """With delisting turned off a complete run delists nothing and says so."""
    store, clock = FakeStore(), FakeClock()
    job(FakeRun(items(1, 2)), store, clock)()
    clock.sleep(60)
    result = job(FakeRun(items(1)), store, clock, delist=False)()
    assert store.delisted() == set()
    assert "--no-delist" in result.metadata["delisting_skipped"]


def test_outage_mid_stream_keeps_earlier_batches_and_fails() -> None:
    """An API outage after 1,500 items keeps the first full batch and logs the run failed."""
    store = FakeStore()
    run = FakeRun(items(*range(1, 3001)), outage_after=1500)
    result = job(run, store, FakeClock())()
    assert len(store.rows) == 1000  # the half-filled second batch was never written
    assert result.status == "failed"
    assert "503" in (result.error_message or "")
    assert result.records_fetched == 1500
    assert result.metadata["delisted"] == 0


def test_database_outage_stops_the_run() -> None:
    """A database that goes away stops the run (failed) without rejecting any item."""
    store = FakeStore(down_after=1)
    result = job(FakeRun(items(*range(1, 2001))), store, FakeClock())()
    assert result.status == "failed"
    assert result.records_errors == 0
    assert "went away" in (result.error_message or "")


def test_database_outage_mid_stream_keeps_the_written_batches_and_writes_no_later_one() -> None:
    """An outage on batch 2 of 5 keeps batch 1, writes nothing after it, and stops reading.

    Batches are written while the next one is mapped, so at most one more batch has been
    read from the source when the outage is seen.
    """
    store = FakeStore(down_after=1)
    result = job(FakeRun(items(*range(1, 5001))), store, FakeClock())()
    assert result.status == "failed"
    assert len(store.rows) == 1000
    assert store.statements == [1000]
    assert result.records_errors == 0
    assert 2000 <= result.records_fetched <= 3000


def test_rejections_from_mapping_and_from_the_database_are_all_counted() -> None:
    """Items rejected by the mapper and by the database (two threads) are each counted once."""
    store = FakeStore()
    raw = items(*range(1, 3001))
    for n in range(0, 3000, 100):
        raw[n] = {"id": raw[n]["id"]}  # no name, no photos: the mapper rejects it
    for n in range(50, 3000, 500):
        raw[n] = {**raw[n], "name": "POISON"}  # the database refuses its statement
    result = job(FakeRun(raw), store, FakeClock())()
    assert result.records_errors == 30 + 6
    assert len(store.rows) == 3000 - 36
    assert result.records_fetched == 3000
