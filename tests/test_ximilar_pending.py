"""Records inserted just before a crash are never orphaned by a later photo change."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from tests.fix_db import PgServer
from tests.fix_ximilar import FakeXimilar, execute, seed_products
from tests.test_ximilar_sync import CrashingIndex, SimulatedCrashError, client, queue
from undecat.adapters.postgres import Database, PostgresWorkQueue, PostgresXimilarLedger
from undecat.adapters.ximilar import XimilarClient
from undecat.domain.models import Claim, RunResult
from undecat.domain.stages import Outcome
from undecat.errors import DatabaseUnavailableError
from undecat.jobs.ximilar import ximilar_sync
from undecat.redact import Secret

__all__ = ["client", "queue"]  # the fixtures, shared with the sync module

LEASE = timedelta(minutes=10)


def _sync(queue: PostgresWorkQueue, index: Any, db: Database) -> RunResult:
    return ximilar_sync(
        queue,
        index,
        owner="test-worker",
        lease=LEASE,
        batch_size=50,
        ledger=PostgresXimilarLedger(db),
    )


def _pending(dsn: str) -> dict[str, list[str]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT external_id, ximilar_pending_ids FROM raw_products").fetchall()
    return dict(rows)


def _change_every_photo(dsn: str) -> None:
    """A re-collect brings new photos; the downloader stores them (same S3 keys)."""
    execute(
        dsn,
        "UPDATE raw_products SET original_image_urls = (SELECT jsonb_agg(u || '?v=2')"
        " FROM jsonb_array_elements_text(original_image_urls) AS u)",
    )
    execute(
        dsn,
        "UPDATE raw_products SET image_status = 'uploaded',"
        " image_urls = (SELECT jsonb_agg(u) FROM jsonb_array_elements_text(original_image_urls)"
        " AS u)",
    )


def test_records_of_a_crashed_insert_are_deleted_after_the_photos_change(
    queue: PostgresWorkQueue,
    client: XimilarClient,
    fake_ximilar: FakeXimilar,
    staging_dsn: str,
    staging_db: Database,
) -> None:
    """Crash after Ximilar stored the records, photos change: the old records are deleted."""
    seed_products(staging_dsn, 3)
    with pytest.raises(SimulatedCrashError):
        _sync(queue, CrashingIndex(client, crash_on=1), staging_db)
    orphans = set(fake_ximilar.records)
    assert len(orphans) == 6
    noted = _pending(staging_dsn)
    assert {i for ids in noted.values() for i in ids} == orphans
    _change_every_photo(staging_dsn)
    result = _sync(queue, client, staging_db)
    assert result.status == "success"
    assert not orphans & set(fake_ximilar.records)  # every orphan deleted
    assert len(fake_ximilar.records) == 6  # the new photos' records
    assert result.metadata["records_deleted"] == 6
    assert all(ids == [] for ids in _pending(staging_dsn).values())


def test_noted_ids_are_cleared_once_the_outcome_is_written(
    queue: PostgresWorkQueue,
    client: XimilarClient,
    fake_ximilar: FakeXimilar,
    staging_dsn: str,
    staging_db: Database,
) -> None:
    """A run that completes leaves nothing noted; a later photo change deletes only real records."""
    seed_products(staging_dsn, 2)
    assert _sync(queue, client, staging_db).status == "success"
    assert all(ids == [] for ids in _pending(staging_dsn).values())
    before = set(fake_ximilar.records)
    _change_every_photo(staging_dsn)
    result = _sync(queue, client, staging_db)
    assert result.metadata["records_deleted"] == 4
    assert not before & set(fake_ximilar.records)


def test_the_ximilar_role_may_note_ids_and_delisting_makes_them_known(
    pg_server: PgServer, staging_dsn: str, staging_db: Database
) -> None:
    """The ximilar role notes ids on rows it leases only; delisting moves them to record ids."""
    with psycopg.connect(pg_server.admin_dsn, autocommit=True) as conn:
        conn.execute("ALTER ROLE ximilar WITH LOGIN PASSWORD 'role-test-password'")
    dbname = str(psycopg.conninfo.conninfo_to_dict(staging_dsn)["dbname"])
    url = pg_server.dsn_for(dbname, user="ximilar", password="role-test-password")
    held, other = seed_products(staging_dsn, 2)
    execute(staging_dsn, f"UPDATE raw_products SET ximilar_owner = 'me' WHERE id = {held}")
    with Database(Secret(url), name="ximilar", max_size=1) as as_ximilar:
        ledger = PostgresXimilarLedger(as_ximilar)
        assert ledger.note_pending("me", {held: ["a", "b"], other: ["c"]}) == {held}
        assert ledger.note_pending("me", {held: ["b", "d"]}) == {held}
    assert _pending(staging_dsn)["700000000"] == ["a", "b", "d"]
    execute(staging_dsn, f"UPDATE raw_products SET delisted_at = now() WHERE id = {held}")
    with psycopg.connect(staging_dsn) as conn:
        row = conn.execute(
            "SELECT ximilar_record_ids, ximilar_pending_ids FROM raw_products WHERE id = %s",
            (held,),
        ).fetchone()
    assert row == (["a", "b", "d"], [])


class DatabaseGoneWhileWriting:
    """The real queue, except that the database goes away when the outcomes are written."""

    def __init__(self, queue: PostgresWorkQueue) -> None:
        self.queue = queue
        self.stage = queue.stage

    def __getattr__(self, name: str) -> Any:
        return getattr(self.queue, name)

    def complete_many(self, done: Sequence[tuple[Claim, Outcome]]) -> list[bool]:
        raise DatabaseUnavailableError("the database went away")


def test_an_outage_while_writing_outcomes_hands_the_rest_back_at_once(
    queue: PostgresWorkQueue,
    client: XimilarClient,
    fake_ximilar: FakeXimilar,
    staging_dsn: str,
    staging_db: Database,
) -> None:
    """Products not written when the database fails are claimable at once, never resent."""
    seed_products(staging_dsn, 3)
    with pytest.raises(DatabaseUnavailableError):
        _sync(DatabaseGoneWhileWriting(queue), client, staging_db)  # type: ignore[arg-type]
    result = _sync(queue, client, staging_db)  # at once: no lease left to lapse
    # The batch's outcomes are one statement: none was written, all three are adopted.
    assert (result.records_fetched, result.metadata["records_adopted"]) == (3, 6)
    assert fake_ximilar.resent_while_held == {}
    with psycopg.connect(staging_dsn) as conn:
        statuses = conn.execute("SELECT ximilar_status FROM raw_products").fetchall()
    assert statuses == [("synced",)] * 3
