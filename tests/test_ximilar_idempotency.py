"""Idempotency of the Ximilar stage under any interleaving of runs, crashes and faults."""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import Any

import psycopg
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakes import FakeClock
from tests.fix_ximilar import (
    FakeXimilar,
    client_for,
    execute,
    expire_ximilar_leases,
    record_ids_of,
    seed_products,
    serve,
)
from tests.test_ximilar_sync import CrashingIndex, SimulatedCrashError
from undecat.adapters.postgres import Database, PostgresWorkQueue
from undecat.adapters.ximilar import XimilarClient
from undecat.domain.stages import Stage
from undecat.errors import OutageError
from undecat.jobs.ximilar import ximilar_retry, ximilar_sync

PILOT, PHOTOS = 6, 4
LEASE = timedelta(minutes=5)

_steps = st.lists(
    st.one_of(
        st.tuples(st.just("sync"), st.integers(1, 7)),
        st.tuples(st.just("crash"), st.integers(1, 3)),
        st.tuples(st.just("refuse"), st.integers(0, PILOT - 1), st.integers(0, PHOTOS - 1)),
        st.tuples(st.just("retry"), st.integers(1, 7)),
        st.tuples(st.just("raise"), st.integers(0, PILOT - 1), st.integers(1, 2)),
        st.tuples(st.just("timeout"), st.integers(1, 7)),
        st.tuples(st.just("outage"), st.integers(1, 7)),
    ),
    min_size=1,
    max_size=8,
)


def _reset(dsn: str) -> list[int]:
    execute(dsn, "TRUNCATE raw_products, scraper_logs RESTART IDENTITY")
    ids = seed_products(dsn, PILOT, photos=PHOTOS)
    seed_products(dsn, 2, start=100, photos=PHOTOS, scope="off")
    seed_products(dsn, 2, start=200, photos=PHOTOS, scope="pgvector")
    return ids


def _step(
    step: tuple[Any, ...],
    *,
    dsn: str,
    ids: list[int],
    queue: PostgresWorkQueue,
    client: XimilarClient,
    fake: FakeXimilar,
) -> None:
    kind = step[0]
    run: dict[str, Any] = {"owner": "prop", "lease": LEASE}
    if kind == "sync":
        ximilar_sync(queue, client, batch_size=step[1], **run)
    elif kind == "retry":
        ximilar_retry(queue, client, batch_size=step[1], **run)
    elif kind == "crash":
        try:
            ximilar_sync(queue, CrashingIndex(client, crash_on=step[1]), batch_size=3, **run)
        except SimulatedCrashError:
            expire_ximilar_leases(dsn)  # the worker is gone; its leases lapse
    elif kind == "refuse":
        rid = record_ids_of(dsn, "id", ids[step[1]])[step[2]]
        fake.fail_records[rid] = (400, "image could not be downloaded")
        ximilar_sync(queue, client, batch_size=4, **run)
        fake.fail_records.clear()
    elif kind == "raise":
        execute(
            dsn,
            "UPDATE raw_products SET ximilar_target_count = ximilar_target_count + %(n)s"
            " WHERE id = %(id)s",
            {"n": step[2], "id": ids[step[1]]},
        )
    elif kind == "timeout":
        fake.stall = ["after"]
        ximilar_sync(queue, client, batch_size=step[1], **run)
        fake.stall = []
    elif kind == "outage":
        fake.forced = [503] * 20
        with contextlib.suppress(OutageError):
            ximilar_sync(queue, client, batch_size=step[1], **run)
        fake.forced = []


@settings(max_examples=12)
@given(steps=_steps)
def test_any_interleaving_ends_with_exactly_the_target_photos_in_the_collection(
    staging_db: Database, staging_dsn: str, steps: list[tuple[Any, ...]]
) -> None:
    """Any mix of runs, crashes, refusals, time-outs, outages, retries and raises ends exact.

    Exact: each pilot SKU holds exactly its target photos, no _id was inserted twice, and
    ximilar_synced_urls / ximilar_record_ids equal what the collection holds.
    """
    ids = _reset(staging_dsn)
    clock = FakeClock()
    server = serve(clock.monotonic)
    fake = next(server)
    fake.rate_limit = 10.0
    fake.stall_seconds = 0.15
    client = client_for(fake, clock, timeout=0.1, backoff=(0.5, 1.0))
    queue = PostgresWorkQueue(
        staging_db, Stage.XIMILAR, max_attempts=100, retry_spacing=timedelta(0)
    )
    try:
        for step in steps:
            _step(step, dsn=staging_dsn, ids=ids, queue=queue, client=client, fake=fake)
        # Faults over: the daily retry and the weekly sync catch up.
        for _ in range(4):
            expire_ximilar_leases(staging_dsn)
            ximilar_retry(queue, client, owner="settle", lease=LEASE, batch_size=5)
        _check(staging_dsn, fake)
    finally:
        client.close()
        server.close()


def _check(dsn: str, fake: FakeXimilar) -> None:
    assert fake.resent_while_held == {}
    assert all(n == 1 for n in fake.stored.values())
    held: dict[str, set[str]] = {}
    for rid, record in fake.records.items():
        held.setdefault(record["sku_id"], set()).add(rid)
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT external_id, index_scope, image_urls, ximilar_target_count, ximilar_status,"
            " ximilar_synced_urls, ximilar_record_ids FROM raw_products ORDER BY id"
        ).fetchall()
    for sku, scope, urls, target, status, synced, record_ids in rows:
        if scope != "pilot":
            assert sku not in held
            continue
        assert status == "synced", (sku, status)
        assert synced == urls[:target]
        assert set(record_ids) == held.get(sku, set())
        assert sorted(fake.records[rid]["_url"] for rid in record_ids) == sorted(urls[:target])
