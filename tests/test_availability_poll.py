"""availability_poll, stores_refresh and availability_retention end to end.

The real Zara adapter talks to the local fake (tests/fix_zara.py); rows land in a real
staging database, through the composition root, logged in scraper_logs.
"""

from __future__ import annotations

import collections
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.fakes import FakeClock
from tests.fix_zara import ZaraReply, ZaraServer, store_entry
from tests.seed import seed_rows
from undecat.adapters.postgres import Database
from undecat.adapters.postgres.availability import PostgresAvailabilityStore
from undecat.bootstrap import bootstrap
from undecat.cli import run_host
from undecat.config import Config
from undecat.domain.models import AvailabilityRecord, SizeInStock
from undecat.jobs.availability import availability_retention

AGENT = "ZaraApp/15.10.0 test"
STORES = (1236, 1240)


class DayClock(FakeClock):
    """A FakeClock whose wall time starts at ``start`` and moves with its sleeps."""

    def __init__(self, start: datetime) -> None:
        super().__init__(start=0.0)
        self.start = start

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.monotonic())


def rows(dsn: str, query: str, params: Any = None) -> list[dict[str, Any]]:
    """Run a query as the superuser and return its rows as dicts."""
    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        return conn.execute(query, params).fetchall()  # test queries


def availability(dsn: str) -> dict[tuple[int, str], Any]:
    """``{(store_id, product_id): sizes_in_stock}`` of every row."""
    found = rows(dsn, "SELECT store_id, product_id, sizes_in_stock FROM raw_availability")
    return {(r["store_id"], r["product_id"]): r["sizes_in_stock"] for r in found}


def seed(dsn: str, count: int, *, start: int = 0, colours: int = 1, **columns: Any) -> list[str]:
    """``count`` products with ``colours`` colour product ids each (id + 1, + 2, ...)."""
    seed_rows(dsn, count, start=start, **columns)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "UPDATE raw_products SET raw_data = jsonb_build_object('colorsSizesImagesJSON',"
            " (SELECT jsonb_agg(jsonb_build_object('id', (800 + c)::text, 'name', 'Colour',"
            "  'productId', external_id::bigint + c)) FROM generate_series(1, %s) c))"
            " WHERE raw_data IS NULL",
            (colours,),
        )
    return [str(500_000_000 + n) for n in range(start, start + count)]


def colour_id(external_id: str, colour: int = 1) -> str:
    """The colour product id :func:`seed` gives colour number ``colour``."""
    return str(int(external_id) + colour)


@pytest.fixture
def clock() -> DayClock:
    """Wall time 10:00 UTC on 2026-12-01."""
    return DayClock(datetime(2026, 12, 1, 10, 0, tzinfo=UTC))


def make_config(staging_dsn: str, zara: ZaraServer, **env: str) -> Config:
    """The scraper host's configuration against the fake, politeness off."""
    values = {
        "STAGING_DB_URL": staging_dsn,
        "ZARA_USER_AGENT": AGENT,
        "ZARA_BASE_URL": zara.base_url(),
        "AVAILABILITY_DELAY_MIN": "0",
        "AVAILABILITY_DELAY_MAX": "0",
        "BACKOFF_SCHEDULE": "1,2",
        "DUBAI_ZARA_STORES": ",".join(str(s) for s in STORES),
    }
    values.update(env)
    return Config.from_env({k: v for k, v in values.items() if v != ""})


def run(config: Config, clock: FakeClock, job: str) -> dict[str, Any]:
    """Run a scraper job through the composition root; return its scraper_logs row."""
    with bootstrap(config, clock=clock) as jobs:
        jobs.job("scraper", job).run()
    url = config.staging_db_url
    assert url is not None
    (log,) = rows(url.reveal(), "SELECT * FROM scraper_logs ORDER BY id DESC LIMIT 1")
    return log


def test_one_row_per_product_and_store(
    staging_db: Database, staging_dsn: str, zara: ZaraServer, clock: DayClock
) -> None:
    """Each polled store gets a row per product; missing store, stock 0 and 404 mean []."""
    a, b, c = seed(staging_dsn, 3)
    zara.fake.stock[colour_id(a)] = {1236: [("S", 6), ("M", 0), ("XS", 2)]}
    zara.fake.stock[colour_id(b)] = {1236: [("L", None)], 1240: [("S", 0)]}
    # c is unknown to the fake: 404, nothing in stock
    log = run(make_config(staging_dsn, zara), clock, "availability_poll")
    assert log["status"] == "success", log["error_message"]
    assert availability(staging_dsn) == {
        (1236, a): [
            {"colour": "801", "size": "S", "stock": 6},
            {"colour": "801", "size": "XS", "stock": 2},
        ],
        (1240, a): [],
        (1236, b): [{"colour": "801", "size": "L", "stock": None}],
        (1240, b): [],
        (1236, c): [],
        (1240, c): [],
    }
    meta = log["metadata"]
    assert (meta["fetched"], meta["errors"], meta["blocks"]) == (3, 0, 0)
    assert (meta["requests"], meta["coverage"], meta["rows"]) == (3, 1.0, 6)
    assert (log["records_fetched"], log["records_updated"]) == (3, 6)
    assert set(zara.fake.user_agents) == {AGENT}


def test_one_request_per_colour_whatever_the_number_of_stores(
    staging_db: Database, staging_dsn: str, zara: ZaraServer, clock: DayClock
) -> None:
    """Two colours x 25 stores: one request per colour and chunk of 20 stores; sizes merged."""
    (a,) = seed(staging_dsn, 1, colours=2)
    stores = tuple(range(2000, 2025))
    zara.fake.stock[colour_id(a, 1)] = {2000: [("M", 1)]}
    zara.fake.stock[colour_id(a, 2)] = {2000: [("S", 3)], 2024: [("L", 1)]}
    config = make_config(staging_dsn, zara, DUBAI_ZARA_STORES=",".join(map(str, stores)))
    log = run(config, clock, "availability_poll")
    assert log["metadata"]["requests"] == 4
    asked = [len(q["physicalStoreIds"]) for q in zara.fake.stock_requests()]
    assert asked == [20, 5, 20, 5]
    found = availability(staging_dsn)
    assert len(found) == 25
    assert found[2000, a] == [
        {"colour": "801", "size": "M", "stock": 1},
        {"colour": "802", "size": "S", "stock": 3},
    ]
    assert found[2024, a] == [{"colour": "802", "size": "L", "stock": 1}]


def test_pilot_first_then_least_recently_polled_within_the_budget(
    staging_db: Database, staging_dsn: str, zara: ZaraServer, clock: DayClock
) -> None:
    """With time for three products, pilot ones go first; the next run takes the rest."""
    plain = seed(staging_dsn, 4)
    pilot = seed(staging_dsn, 2, start=10, index_scope="pilot")
    config = make_config(
        staging_dsn,
        zara,
        AVAILABILITY_DELAY_MIN="10",
        AVAILABILITY_DELAY_MAX="10",
        AVAILABILITY_RUN_SECONDS="25",
    )
    first = run(config, clock, "availability_poll")
    polled_first = {r["product_id"] for r in rows(staging_dsn, "SELECT * FROM raw_availability")}
    assert first["status"] == "success"
    assert first["metadata"]["fetched"] == 3
    assert first["metadata"]["left"] == 3
    assert set(pilot) < polled_first
    assert len(polled_first & set(plain)) == 1
    assert first["metadata"]["coverage"] == 0.5
    run(config, clock, "availability_poll")
    polled = {r["product_id"] for r in rows(staging_dsn, "SELECT * FROM raw_availability")}
    # the second run starts with the pilot products again, then the never-polled ones
    assert len(polled) == 4


def test_blocks_in_a_row_stop_the_run_as_partial_keeping_what_was_written(
    staging_db: Database, staging_dsn: str, zara: ZaraServer, clock: DayClock
) -> None:
    """403 three times in a row: waits 30 then 60 s, stops partial, earlier rows kept."""
    a, b, _c = seed(staging_dsn, 3)
    zara.fake.stock[colour_id(a)] = {1236: [("S", 1)]}
    blocked = ZaraReply(status=403, body=b"denied")
    zara.fake.scripts[colour_id(b)] = collections.deque([blocked] * 5)
    log = run(make_config(staging_dsn, zara), clock, "availability_poll")
    assert log["status"] == "partial"
    assert "3 anti-bot blocks in a row" in log["error_message"]
    assert clock.sleeps == [30.0, 60.0]
    meta = log["metadata"]
    assert (meta["fetched"], meta["errors"], meta["blocks"], meta["stopped"]) == (
        1,
        0,
        3,
        "blocked",
    )
    assert set(availability(staging_dsn)) == {(1236, a), (1240, a)}
    assert len(zara.fake.stock_requests()) == 4  # a, then b three times; c never asked


def test_a_block_then_an_answer_goes_on(
    staging_db: Database, staging_dsn: str, zara: ZaraServer, clock: DayClock
) -> None:
    """One 403 waits the configured backoff, asks again and the run succeeds."""
    a, b = seed(staging_dsn, 2)
    zara.fake.scripts[colour_id(a)] = collections.deque([ZaraReply(status=403)])
    zara.fake.stock[colour_id(a)] = {1236: [("S", 1)]}
    config = make_config(staging_dsn, zara, AVAILABILITY_BLOCK_BACKOFF="7")
    log = run(config, clock, "availability_poll")
    assert log["status"] == "success"
    assert clock.sleeps == [7.0]
    assert log["metadata"]["blocks"] == 1
    assert availability(staging_dsn)[1236, a] == [{"colour": "801", "size": "S", "stock": 1}]
    assert (1236, b) in availability(staging_dsn)


def test_429_with_retry_after_is_honoured_in_a_run(
    staging_db: Database, staging_dsn: str, zara: ZaraServer, clock: DayClock
) -> None:
    """A 429 asking for 40 s is waited out and the product is polled."""
    (a,) = seed(staging_dsn, 1)
    zara.fake.scripts[colour_id(a)] = collections.deque(
        [ZaraReply(status=429, headers={"Retry-After": "40"})]
    )
    zara.fake.stock[colour_id(a)] = {1240: [("M", 4)]}
    log = run(make_config(staging_dsn, zara), clock, "availability_poll")
    assert log["status"] == "success"
    assert clock.sleeps == [40.0]
    assert availability(staging_dsn)[1240, a] == [{"colour": "801", "size": "M", "stock": 4}]


def test_a_malformed_answer_fails_that_product_only(
    staging_db: Database, staging_dsn: str, zara: ZaraServer, clock: DayClock
) -> None:
    """Malformed JSON counts one error with its reason; the other products are written."""
    a, b, c = seed(staging_dsn, 3)
    zara.fake.scripts[colour_id(b)] = collections.deque([ZaraReply(body=b"{not json")])
    log = run(make_config(staging_dsn, zara), clock, "availability_poll")
    assert log["status"] == "partial"
    assert log["records_errors"] == 1
    (reason,) = log["metadata"]["error_reasons"]
    assert reason.startswith(f"{b}: availability: malformed JSON")
    assert {p for _, p in availability(staging_dsn)} == {a, c}


def test_site_down_fails_the_run(
    staging_db: Database, staging_dsn: str, zara: ZaraServer, clock: DayClock
) -> None:
    """An unreachable site is an outage: the run is failed, no product counted in error."""
    from undecat.adapters.postgres.embedded import free_port  # noqa: PLC0415

    seed(staging_dsn, 2)
    config = make_config(staging_dsn, zara, ZARA_BASE_URL=f"http://127.0.0.1:{free_port()}")
    log = run(config, clock, "availability_poll")
    assert log["status"] == "failed"
    assert "RemoteServiceError" in log["error_message"]
    assert log["records_errors"] == 0


def test_without_stores_the_poll_refreshes_them_first(
    staging_db: Database, staging_dsn: str, zara: ZaraServer, clock: DayClock
) -> None:
    """DUBAI_ZARA_STORES unset and no stored store: the locator is read, then those polled."""
    (a,) = seed(staging_dsn, 1)
    zara.fake.stores = [store_entry(1300), store_entry(1301), store_entry(5, country="QA")]
    log = run(make_config(staging_dsn, zara, DUBAI_ZARA_STORES=""), clock, "availability_poll")
    assert log["status"] == "success"
    assert log["metadata"]["stores_refreshed"] is True
    stored = rows(staging_dsn, "SELECT store_id, country, city FROM raw_stores ORDER BY 1")
    assert stored == [
        {"store_id": 1300, "country": "AE", "city": "Dubai"},
        {"store_id": 1301, "country": "AE", "city": "Dubai"},
    ]
    assert set(availability(staging_dsn)) == {(1300, a), (1301, a)}


def test_stores_refresh_upserts_on_brand_and_store_id(
    staging_db: Database, staging_dsn: str, zara: ZaraServer, clock: DayClock
) -> None:
    """A second refresh changes nothing; a renamed store is updated in place."""
    zara.fake.stores = [store_entry(1300), store_entry(1301)]
    config = make_config(staging_dsn, zara)
    assert run(config, clock, "stores_refresh")["records_updated"] == 2
    assert run(config, clock, "stores_refresh")["records_updated"] == 0
    zara.fake.stores = [store_entry(1300, name="ZARA RENAMED"), store_entry(1301)]
    assert run(config, clock, "stores_refresh")["records_updated"] == 1
    assert len(rows(staging_dsn, "SELECT * FROM raw_stores")) == 2


def test_an_empty_locator_fails_stores_refresh(
    staging_db: Database, staging_dsn: str, zara: ZaraServer, clock: DayClock
) -> None:
    """No store of the country in the answer is a failed run, not an empty store list."""
    zara.fake.stores = [store_entry(5, country="QA")]
    log = run(make_config(staging_dsn, zara), clock, "stores_refresh")
    assert log["status"] == "failed"
    assert "no store" in log["error_message"]


def _record(product: str, when: datetime, size: str) -> AvailabilityRecord:
    return AvailabilityRecord("zara", 1236, product, (SizeInStock("801", size, 1),), when)


def test_the_utc_day_rule_against_the_real_index(staging_db: Database, staging_dsn: str) -> None:
    """23:30 and 00:30 UTC make two rows; two answers in one UTC day make one, the later."""
    store = PostgresAvailabilityStore(staging_db)
    late = datetime(2026, 12, 1, 23, 30, tzinfo=UTC)
    store.write([_record("p1", late, "S")])
    store.write([_record("p1", late + timedelta(hours=1), "M")])
    assert len(rows(staging_dsn, "SELECT * FROM raw_availability")) == 2
    morning = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    store.write([_record("p2", morning, "S")])
    store.write([_record("p2", morning + timedelta(hours=5), "L")])
    store.write([_record("p2", morning + timedelta(hours=1), "XS")])  # older, arriving late
    (row,) = rows(staging_dsn, "SELECT * FROM raw_availability WHERE product_id = 'p2'")
    assert row["sizes_in_stock"] == [{"colour": "801", "size": "L", "stock": 1}]
    assert row["fetched_at"] == morning + timedelta(hours=5)
    # in one batch too: the later of two answers for one day is kept
    store.write([_record("p3", morning, "S"), _record("p3", morning + timedelta(hours=2), "M")])
    (row,) = rows(staging_dsn, "SELECT * FROM raw_availability WHERE product_id = 'p3'")
    assert row["sizes_in_stock"][0]["size"] == "M"


def test_two_polls_in_a_day_leave_one_row_with_the_later_answer(
    staging_db: Database, staging_dsn: str, zara: ZaraServer, clock: DayClock
) -> None:
    """The hourly poll run twice on one UTC day replaces the row; after midnight adds one."""
    (a,) = seed(staging_dsn, 1)
    config = make_config(staging_dsn, zara, DUBAI_ZARA_STORES="1236")
    zara.fake.stock[colour_id(a)] = {1236: [("S", 1)]}
    run(config, clock, "availability_poll")
    clock.advance(3600)
    zara.fake.stock[colour_id(a)] = {1236: [("M", 2)]}
    run(config, clock, "availability_poll")
    (row,) = rows(staging_dsn, "SELECT * FROM raw_availability")
    assert row["sizes_in_stock"] == [{"colour": "801", "size": "M", "stock": 2}]
    assert row["fetched_at"] == datetime(2026, 12, 1, 11, 0, tzinfo=UTC)
    clock.advance(14 * 3600)  # 01:00 UTC the next day
    run(config, clock, "availability_poll")
    assert len(rows(staging_dsn, "SELECT * FROM raw_availability")) == 2


def test_retention_deletes_old_rows_in_batches_without_waiting_for_locks(
    staging_db: Database, staging_dsn: str
) -> None:
    """Rows past 90 days go, in batches; a row another transaction holds is skipped, not awaited."""
    store = PostgresAvailabilityStore(staging_db)
    now = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
    ages = {"fresh": 1, "edge": 89, "old1": 91, "old2": 120, "old3": 200, "held": 300}
    store.write([_record(p, now - timedelta(days=d), "S") for p, d in ages.items()])
    clock = DayClock(now)
    with psycopg.connect(staging_dsn) as holder:
        holder.execute("SELECT 1 FROM raw_availability WHERE product_id = 'held' FOR UPDATE")
        done = threading.Event()
        result: list[Any] = []

        def retention() -> None:
            result.append(availability_retention(store, clock, days=90, batch=2))
            done.set()

        threading.Thread(target=retention, daemon=True).start()
        assert done.wait(20), "retention waited for a locked row"
    (outcome,) = result
    assert outcome.metadata["deleted"] == 3
    assert outcome.metadata["batches"] == 2
    left = {r["product_id"] for r in rows(staging_dsn, "SELECT product_id FROM raw_availability")}
    assert left == {"fresh", "edge", "held"}


def test_the_document_placeholder_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], staging_dsn: str
) -> None:
    """DUBAI_ZARA_STORES=PLACEHOLDER_STORE_IDS stops the runner with exit 2 naming it."""
    monkeypatch.setenv("STAGING_DB_URL", staging_dsn)
    monkeypatch.setenv("ZARA_USER_AGENT", AGENT)
    for value in ("PLACEHOLDER_STORE_IDS", "1236,abc"):
        monkeypatch.setenv("DUBAI_ZARA_STORES", value)
        assert run_host("scraper", ["availability_poll"]) == 2
        assert "DUBAI_ZARA_STORES" in capsys.readouterr().err


def test_concurrent_requests_stay_within_the_limit(
    staging_db: Database, staging_dsn: str, zara: ZaraServer, clock: DayClock
) -> None:
    """AVAILABILITY_CONCURRENCY=3: every product is polled, never more than 3 requests at once."""
    ids = seed(staging_dsn, 9)
    for external_id in ids:
        zara.fake.stock[colour_id(external_id)] = {1236: [("S", 1)]}
    zara.fake.latency = 0.05
    config = make_config(staging_dsn, zara, AVAILABILITY_CONCURRENCY="3", DUBAI_ZARA_STORES="1236")
    log = run(config, clock, "availability_poll")
    assert log["status"] == "success"
    assert log["metadata"]["fetched"] == 9
    assert 1 < zara.fake.max_in_flight <= 3
    assert len(availability(staging_dsn)) == 9


def test_configured_stores_are_polled_even_when_the_locator_fails(
    staging_db: Database, staging_dsn: str, zara: ZaraServer, clock: DayClock
) -> None:
    """With DUBAI_ZARA_STORES set, a first poll reads the locator, and a blocked one is no stop."""
    (a,) = seed(staging_dsn, 1)
    zara.fake.locator_script.append(ZaraReply(status=403))
    log = run(make_config(staging_dsn, zara), clock, "availability_poll")
    assert log["status"] == "success"
    assert log["metadata"]["stores_refreshed"] is True
    assert set(availability(staging_dsn)) == {(1236, a), (1240, a)}
    zara.fake.stores = [store_entry(1236), store_entry(1240)]
    run(make_config(staging_dsn, zara), clock, "availability_poll")
    stored = rows(staging_dsn, "SELECT store_id, name FROM raw_stores ORDER BY 1")
    assert stored == [
        {"store_id": 1236, "name": "Zara Mall 1236"},
        {"store_id": 1240, "name": "Zara Mall 1240"},
    ]
