"""The ximilar_sync and ximilar_retry jobs on real PostgreSQL against the fake collection."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.fakes import FakeClock
from tests.fix_ximilar import (
    COLLECTION,
    PREFIX,
    TOKEN,
    FakeXimilar,
    client_for,
    execute,
    expire_ximilar_leases,
    record_ids_of,
    seed_products,
)
from undecat.adapters.postgres import Database, PostgresWorkQueue
from undecat.adapters.ximilar import DryRunIndex, XimilarClient
from undecat.bootstrap import bootstrap
from undecat.config import Config
from undecat.domain.models import RunResult
from undecat.domain.stages import Stage
from undecat.domain.ximilar import Confirmed
from undecat.errors import RemoteServiceError
from undecat.jobs.ximilar import ximilar_retry, ximilar_sync
from undecat.redact import Secret

LEASE = timedelta(minutes=5)


class SimulatedCrashError(BaseException):
    """The process dying: not an UndecatError, so nothing catches it."""


class CrashingIndex:
    """A real client that dies right after the ``crash_on``-th insert request returned."""

    def __init__(self, inner: XimilarClient, crash_on: int) -> None:
        self.inner = inner
        self.crash_on = crash_on
        self.calls = 0

    def insert(self, records: Sequence[Mapping[str, Any]]) -> set[str]:
        confirmed = self.inner.insert(records)
        self.calls += 1
        if self.calls == self.crash_on:
            raise SimulatedCrashError
        return confirmed

    def delete(self, record_ids: Sequence[str]) -> Confirmed:
        return self.inner.delete(record_ids)

    def existing(self, record_ids: Sequence[str]) -> set[str]:
        return self.inner.existing(record_ids)


@pytest.fixture
def client(fake_ximilar: FakeXimilar, ximilar_clock: FakeClock) -> Iterator[XimilarClient]:
    """The real client of the fake collection, both held to 10 requests/s on the fake clock."""
    fake_ximilar.rate_limit = 10.0
    made = client_for(fake_ximilar, ximilar_clock)
    yield made
    made.close()


@pytest.fixture
def queue(staging_db: Database) -> PostgresWorkQueue:
    """The Ximilar work queue, requeued work claimable at once."""
    return PostgresWorkQueue(staging_db, Stage.XIMILAR, retry_spacing=timedelta(0))


def _sync(queue: PostgresWorkQueue, index: Any, *, batch: int = 50, **kw: Any) -> RunResult:
    return ximilar_sync(queue, index, owner="test-worker", lease=LEASE, batch_size=batch, **kw)


def _rows(dsn: str) -> dict[str, dict[str, Any]]:
    with psycopg.connect(dsn) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        cur.execute(
            "SELECT external_id, index_scope, image_urls, ximilar_status, ximilar_synced_urls,"
            " ximilar_record_ids, ximilar_owner, ximilar_attempts, error_message,"
            " ximilar_synced_at FROM raw_products ORDER BY id"
        )
        return {row["external_id"]: row for row in cur.fetchall()}


def _collection_urls(fake: FakeXimilar) -> dict[str, list[str]]:
    held: dict[str, list[str]] = {}
    for record in fake.records.values():
        held.setdefault(record["sku_id"], []).append(record["_url"])
    return {sku: sorted(urls) for sku, urls in held.items()}


def test_pilot_skus_get_two_photos_each_and_a_second_run_sends_nothing(
    queue: PostgresWorkQueue, client: XimilarClient, fake_ximilar: FakeXimilar, staging_dsn: str
) -> None:
    """23 pilot SKUs: 46 records in 5 requests filled across products; the rerun makes none."""
    seed_products(staging_dsn, 23)
    result = _sync(queue, client)
    assert result.status == "success"
    assert result.records_new == 46
    assert fake_ximilar.requests == [("insert", 10)] * 4 + [("insert", 6)]
    rows = _rows(staging_dsn)
    assert _collection_urls(fake_ximilar) == {
        sku: sorted(row["image_urls"][:2]) for sku, row in rows.items()
    }
    for row in rows.values():
        assert row["ximilar_status"] == "synced"
        assert row["ximilar_synced_urls"] == row["image_urls"][:2]
        assert len(row["ximilar_record_ids"]) == 2
        assert row["ximilar_owner"] is None
        assert row["ximilar_synced_at"] is not None
    record = next(iter(fake_ximilar.records.values()))
    assert set(record) == {"_id", "_url", "sku_id", "brand", "name", "category", "price"}
    assert record["price"].count(".") == 1

    before = len(fake_ximilar.requests)
    again = _sync(queue, client)
    assert again.records_fetched == 0
    assert len(fake_ximilar.requests) == before


def test_non_pilot_and_unready_rows_are_never_sent(
    queue: PostgresWorkQueue, client: XimilarClient, fake_ximilar: FakeXimilar, staging_dsn: str
) -> None:
    """index_scope 'off' and 'pgvector', and photos not yet stored, send nothing and stay put."""
    seed_products(staging_dsn, 4, scope="off")
    seed_products(staging_dsn, 4, start=10, scope="pgvector")
    seed_products(staging_dsn, 4, start=20, image_status="pending")
    seed_products(staging_dsn, 2, start=30)
    result = _sync(queue, client)
    assert result.records_fetched == 2
    assert {r["sku_id"] for r in fake_ximilar.records.values()} == {"700000030", "700000031"}
    untouched = [
        r for sku, r in _rows(staging_dsn).items() if sku not in ("700000030", "700000031")
    ]
    assert len(untouched) == 12
    assert all(r["ximilar_status"] == "pending" for r in untouched)
    assert all(r["ximilar_synced_urls"] == [] == r["ximilar_record_ids"] for r in untouched)


def test_raising_the_target_sends_only_the_extra_photo(
    queue: PostgresWorkQueue, client: XimilarClient, fake_ximilar: FakeXimilar, staging_dsn: str
) -> None:
    """A synced SKU whose target goes 2 -> 3 is partial (migration 0005) and gets one insert."""
    ids = seed_products(staging_dsn, 3)
    _sync(queue, client)
    execute(staging_dsn, "UPDATE raw_products SET ximilar_target_count = 3 WHERE id = %(id)s",
            {"id": ids[0]})  # fmt: skip
    assert _rows(staging_dsn)["700000000"]["ximilar_status"] == "partial"
    before = len(fake_ximilar.requests)
    result = _sync(queue, client)
    assert result.records_new == 1
    assert fake_ximilar.requests[before:] == [("insert", 1)]
    row = _rows(staging_dsn)["700000000"]
    assert row["ximilar_status"] == "synced"
    assert row["ximilar_synced_urls"] == row["image_urls"]
    assert max(fake_ximilar.stored.values()) == 1


def test_changed_photos_replace_stale_records(
    queue: PostgresWorkQueue, client: XimilarClient, fake_ximilar: FakeXimilar, staging_dsn: str
) -> None:
    """A re-collect that changes photo 2 deletes its old record and inserts the new one only."""
    seed_products(staging_dsn, 2)
    _sync(queue, client)
    old_ids = _rows(staging_dsn)["700000000"]["ximilar_record_ids"]
    # The collect stage brings a new photo 2 (the trigger of 0002 resets the Ximilar state
    # but keeps the record ids); the downloader then stores it under the same S3 key.
    execute(
        staging_dsn,
        "UPDATE raw_products SET original_image_urls = jsonb_set(original_image_urls, '{1}',"
        " '\"https://static.zara.net/p/0/2-new.jpg\"') WHERE external_id = '700000000'",
    )
    execute(
        staging_dsn,
        "UPDATE raw_products SET image_status = 'uploaded', image_urls = (SELECT jsonb_agg("
        "'http://s3.local/unde-images/originals/zara/700000000/' || i || '.jpg' ORDER BY i)"
        " FROM generate_series(1, 3) i) WHERE external_id = '700000000'",
    )
    before = len(fake_ximilar.requests)
    result = _sync(queue, client)
    assert result.status == "success"
    assert fake_ximilar.requests[before:] == [("delete", 1), ("insert", 1)]
    row = _rows(staging_dsn)["700000000"]
    assert row["ximilar_status"] == "synced"
    assert row["ximilar_record_ids"][0] == old_ids[0]
    assert row["ximilar_record_ids"][1] != old_ids[1]
    assert old_ids[1] not in fake_ximilar.records
    assert set(row["ximilar_record_ids"]) <= set(fake_ximilar.records)
    assert result.metadata["records_deleted"] == 1


def test_delisted_products_are_removed_from_the_collection(
    queue: PostgresWorkQueue, client: XimilarClient, fake_ximilar: FakeXimilar, staging_dsn: str
) -> None:
    """Delisting a synced SKU deletes both its records and leaves it pending with empty lists."""
    seed_products(staging_dsn, 2)
    _sync(queue, client)
    execute(
        staging_dsn, "UPDATE raw_products SET delisted_at = now() WHERE external_id = '700000000'"
    )
    result = _sync(queue, client)
    assert result.metadata["products_removed"] == 1
    assert {r["sku_id"] for r in fake_ximilar.records.values()} == {"700000001"}
    row = _rows(staging_dsn)["700000000"]
    assert (row["ximilar_status"], row["ximilar_synced_urls"], row["ximilar_record_ids"]) == (
        "pending",
        [],
        [],
    )
    assert _sync(queue, client).records_fetched == 0


def test_a_refused_photo_fails_its_product_and_retry_never_pays_twice(
    queue: PostgresWorkQueue, client: XimilarClient, fake_ximilar: FakeXimilar, staging_dsn: str
) -> None:
    """A refused record marks only its SKU error with the reason; ximilar_retry finishes it."""
    seed_products(staging_dsn, 3)
    plan_ids = record_ids_of(staging_dsn, "external_id", "700000001")
    fake_ximilar.fail_records = {plan_ids[1]: (400, "image could not be downloaded")}
    result = _sync(queue, client)
    assert result.status == "partial"
    assert result.records_errors == 1
    rows = _rows(staging_dsn)
    failed = rows["700000001"]
    assert failed["ximilar_status"] == "error"
    assert "photo 2" in failed["error_message"]
    assert "image could not be downloaded" in failed["error_message"]
    assert rows["700000000"]["ximilar_status"] == rows["700000002"]["ximilar_status"] == "synced"

    fake_ximilar.fail_records = {}
    retried = ximilar_retry(queue, client, owner="test-worker", lease=LEASE, batch_size=50)
    assert retried.metadata["requeued"] == 1
    assert retried.metadata["records_adopted"] == 1  # photo 1 was in: found, not re-sent
    assert retried.records_new == 1
    row = _rows(staging_dsn)["700000001"]
    assert row["ximilar_status"] == "synced"
    assert row["ximilar_synced_urls"] == row["image_urls"][:2]
    assert fake_ximilar.resent_while_held == {}
    assert max(fake_ximilar.stored.values()) == 1


def test_an_outage_gives_everything_back_and_marks_nothing(
    queue: PostgresWorkQueue,
    client: XimilarClient,
    fake_ximilar: FakeXimilar,
    ximilar_clock: FakeClock,
    staging_dsn: str,
) -> None:
    """A refused token stops the run; no row is error, every row can be claimed again at once.

    The five SKUs of the request in flight keep their attempt (so the next run asks the
    collection first); the seven never sent are released with the attempt not counted.
    """
    seed_products(staging_dsn, 12)
    wrong = client_for(fake_ximilar, ximilar_clock, token="not-the-token")
    try:
        with pytest.raises(RemoteServiceError):
            _sync(queue, wrong)
    finally:
        wrong.close()
    rows = list(_rows(staging_dsn).values())
    assert all(r["ximilar_status"] == "pending" and r["error_message"] is None for r in rows)
    assert [r["ximilar_attempts"] for r in rows] == [1] * 5 + [0] * 7
    assert all(r["ximilar_owner"] is None for r in rows[5:])
    result = _sync(queue, client)
    assert result.records_fetched == 12
    assert result.metadata["records_adopted"] == 0
    assert result.records_new == 24


def test_a_crash_between_the_insert_and_the_database_update_never_inserts_twice(
    queue: PostgresWorkQueue, client: XimilarClient, fake_ximilar: FakeXimilar, staging_dsn: str
) -> None:
    """The process dies after Ximilar stored 20 records; the next run adopts them and goes on."""
    seed_products(staging_dsn, 15)
    with pytest.raises(SimulatedCrashError):
        _sync(queue, CrashingIndex(client, crash_on=2))
    assert len(fake_ximilar.records) == 20
    assert all(r["ximilar_status"] == "pending" for r in _rows(staging_dsn).values())
    expire_ximilar_leases(staging_dsn)
    result = _sync(queue, client)
    assert result.metadata["records_adopted"] == 20
    assert result.records_new == 10
    assert fake_ximilar.resent_while_held == {}
    rows = _rows(staging_dsn)
    assert all(r["ximilar_status"] == "synced" for r in rows.values())
    assert _collection_urls(fake_ximilar) == {
        sku: sorted(row["ximilar_synced_urls"]) for sku, row in rows.items()
    }


def test_dry_run_records_requests_and_credits_and_changes_no_status(
    queue: PostgresWorkQueue, ximilar_clock: FakeClock, staging_dsn: str, tmp_path: Path
) -> None:
    """Without a token every would-be request is a JSON line with its credits; rows stay put."""
    seed_products(staging_dsn, 12)
    seed_products(staging_dsn, 3, start=50, scope="off")
    before = _rows(staging_dsn)
    log = tmp_path / "ximilar-dry-run.jsonl"
    index = DryRunIndex(log, ximilar_clock, endpoint=f"https://api.ximilar.com/{PREFIX}")
    result = _sync(queue, index, batch=5, dry_run=True)
    assert result.status == "success"
    assert result.metadata["dry_run"] is True
    assert result.metadata["credits"] == 24
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(x["method"], len(x["records"]), x["credits"]) for x in lines] == [
        ("insert", 10, 10),
        ("insert", 10, 10),
        ("insert", 4, 4),
    ]
    assert lines[0]["url"] == f"https://api.ximilar.com/{PREFIX}/insert"
    assert set(lines[0]["records"][0]) == {"_id", "_url", "sku_id", "brand", "name", "category",
                                           "price"}  # fmt: skip
    assert _rows(staging_dsn) == before


def test_bootstrap_wires_the_dry_run_without_a_token_and_the_client_with_one(
    staging_dsn: str,
    staging_db: Database,
    fake_ximilar: FakeXimilar,
    ximilar_clock: FakeClock,
    tmp_path: Path,
) -> None:
    """The runner's jobs log to scraper_logs; no token means dry run, a token means real sync."""
    seed_products(staging_dsn, 3)
    dry = Config(
        staging_db_url=Secret(staging_dsn),
        data_dir=tmp_path,
        s3_public_base_url="http://s3.local/unde-images",
    )
    with bootstrap(dry, clock=ximilar_clock) as jobs:
        result = jobs.job("ximilar_sync", "ximilar_sync").run()
    assert result.metadata["dry_run"] is True
    assert (tmp_path / "ximilar-dry-run.jsonl").exists()
    assert all(r["ximilar_status"] == "pending" for r in _rows(staging_dsn).values())

    real = Config(
        staging_db_url=Secret(staging_dsn),
        data_dir=tmp_path,
        s3_public_base_url="http://s3.local/unde-images",
        ximilar_api_token=Secret(TOKEN),
        ximilar_collection_id=Secret(COLLECTION),
        ximilar_api_url=fake_ximilar.url,
    )
    with bootstrap(real, clock=ximilar_clock) as jobs:
        synced = jobs.job("ximilar_sync", "ximilar_sync").run()
        retried = jobs.job("ximilar_sync", "ximilar_retry").run()
    assert synced.records_new == 6
    assert retried.metadata["requeued"] == 0
    assert len(fake_ximilar.records) == 6
    with psycopg.connect(staging_dsn) as conn:
        logged = conn.execute(
            "SELECT scraper_name, status FROM scraper_logs ORDER BY id"
        ).fetchall()
    assert logged == [
        ("ximilar_sync", "success"),
        ("ximilar_sync", "success"),
        ("ximilar_retry", "success"),
    ]


@pytest.mark.parametrize(
    "forged",
    [
        "https://evil.example/a.jpg",
        "http://s3.local/unde-images-evil/a.jpg",
        "http://s3.local/unde-images/../other/a.jpg",
        "http://s3.local.evil.example/unde-images/a.jpg",
    ],
)
def test_a_photo_url_outside_the_object_store_is_an_error_and_never_sent(  # noqa: PLR0917
    staging_dsn: str,
    staging_db: Database,
    fake_ximilar: FakeXimilar,
    ximilar_clock: FakeClock,
    tmp_path: Path,
    forged: str,
) -> None:
    """A row whose image_urls point outside S3_PUBLIC_BASE_URL fails; the others sync."""
    bad, _ = seed_products(staging_dsn, 2)
    execute(
        staging_dsn,
        "UPDATE raw_products SET image_urls = jsonb_set(image_urls, '{1}', to_jsonb(%(u)s::text))"
        " WHERE id = %(id)s",
        {"u": forged, "id": bad},
    )
    config = Config(
        staging_db_url=Secret(staging_dsn),
        data_dir=tmp_path,
        s3_public_base_url="http://s3.local/unde-images/",
        ximilar_api_token=Secret(TOKEN),
        ximilar_collection_id=Secret(COLLECTION),
        ximilar_api_url=fake_ximilar.url,
    )
    with bootstrap(config, clock=ximilar_clock) as jobs:
        result = jobs.job("ximilar_sync", "ximilar_sync").run()
    rows = _rows(staging_dsn)
    refused, synced = rows["700000000"], rows["700000001"]
    assert refused["ximilar_status"] == "error"
    assert "photo 2" in refused["error_message"]
    assert "not under the object store's public base URL" in refused["error_message"]
    assert synced["ximilar_status"] == "synced"
    assert result.records_errors == 1
    assert all(not r["_url"].startswith(forged) for r in fake_ximilar.records.values())
    assert len(fake_ximilar.records) == 2
