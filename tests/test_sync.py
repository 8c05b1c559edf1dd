"""sync_to_production end to end: a real staging and a real production database.

The scenarios of the issue: not ready stays pending, skipped until collect fixes it,
delisted becomes inactive, a second run writes nothing, production down marks nothing, a
runner killed mid-run and restarted leaves both databases agreeing; and the grants.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import errors, sql
from psycopg.rows import dict_row

from tests.fakes import FakeClock
from tests.fix_db import PgServer
from tests.seed import seed_rows
from undecat.adapters.postgres import Database
from undecat.adapters.postgres.embedded import free_port
from undecat.availability import in_stock
from undecat.bootstrap import bootstrap
from undecat.cli import run_host
from undecat.config import Config

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "sync-role-password"

#: The staging columns production mirrors, and their names there.
PROJECTION = """
SELECT brand, external_id, source, name, description, price, currency, category, colour,
       coalesce(sizes, '[]'::jsonb) AS sizes, composition,
       coalesce(image_urls, '[]'::jsonb) AS image_urls, collage_url, ximilar_record_ids,
       index_scope, delisted_at IS NULL AS is_active, id AS staging_id
FROM raw_products WHERE sync_status = 'synced' AND (delisted_at IS NULL OR {seen})
ORDER BY brand, external_id
"""
PRODUCTION = """
SELECT brand, external_id, source, name, description, price, currency, category, colour,
       sizes, composition, image_urls, collage_url, ximilar_record_ids, index_scope,
       is_active, staging_id
FROM catalog.products ORDER BY brand, external_id
"""


def q(dsn: str, query: str, params: Any = None) -> list[dict[str, Any]]:
    """Run a query as the superuser; rows as dicts (none for statements)."""
    with psycopg.connect(dsn, row_factory=dict_row, autocommit=True) as conn:
        cur = conn.execute(query, params)  # test queries
        return cur.fetchall() if cur.description else []


def seed_ready(dsn: str, count: int, *, start: int = 0, **columns: Any) -> list[str]:
    """``count`` products whose collage is ready."""
    seed_rows(dsn, count, start=start, **columns)
    q(
        dsn,
        "UPDATE raw_products SET image_status = 'collage_ready', collage_url ="
        " 'http://s3.local/unde-images/collages/zara/' || external_id || '.jpg',"
        " sizes = '[\"S\", \"M\"]', colour = 'Black'"
        " WHERE external_id::bigint BETWEEN %s AND %s",
        (500_000_000 + start, 500_000_000 + start + count - 1),
    )
    return [str(500_000_000 + n) for n in range(start, start + count)]


def statuses(dsn: str) -> dict[str, tuple[str, str | None]]:
    """``{external_id: (sync_status, error_message)}``."""
    return {
        r["external_id"]: (r["sync_status"], r["error_message"])
        for r in q(dsn, "SELECT external_id, sync_status, error_message FROM raw_products")
    }


def agree(staging: str, production: str) -> None:
    """Production holds exactly the verified projection of staging's synced rows."""
    known = {r["external_id"] for r in q(production, "SELECT external_id FROM catalog.products")}
    expected = [
        r
        for r in q(staging, PROJECTION.format(seen="true"))
        if r["is_active"] or r["external_id"] in known
    ]
    assert q(production, PRODUCTION) == expected


def config_for(staging: str, production: str, **env: str) -> Config:
    """The scraper host's configuration for the sync."""
    return Config.from_env(
        {"STAGING_DB_URL": staging, "PRODUCTION_DB_URL": production, "BATCH_SIZE": "7", **env}
    )


def sync(staging: str, production: str, **env: str) -> dict[str, Any]:
    """Run sync_to_production once; return its scraper_logs row."""
    with bootstrap(config_for(staging, production, **env), clock=FakeClock()) as jobs:
        jobs.job("scraper", "sync_to_production").run()
    (log,) = q(staging, "SELECT * FROM scraper_logs ORDER BY id DESC LIMIT 1")
    return log


def test_ready_products_sync_the_others_wait_or_are_skipped(
    staging_db: Database, staging_dsn: str, production_dsn_empty: str
) -> None:
    """Ready rows are copied and synced; not-ready stay pending; unfit ones are skipped."""
    prod = production_dsn_empty
    ready = seed_ready(staging_dsn, 10)
    seed_rows(staging_dsn, 1, start=20, image_status="uploaded")
    seed_ready(staging_dsn, 1, start=30)
    seed_ready(staging_dsn, 1, start=31)
    seed_rows(staging_dsn, 1, start=32, image_status="error")
    q(staging_dsn, "UPDATE raw_products SET price = NULL WHERE external_id = '500000030'")
    q(staging_dsn, "UPDATE raw_products SET name = '', price = 0 WHERE external_id = '500000031'")
    log = sync(staging_dsn, prod)
    assert log["status"] == "success", log["error_message"]
    state = statuses(staging_dsn)
    assert all(state[e] == ("synced", None) for e in ready)
    assert state["500000020"] == ("pending", None)
    assert state["500000030"] == ("skipped", "sync: skipped: no price")
    assert state["500000031"][1] == "sync: skipped: no name, price 0.00 is not positive"
    assert "image_status error" in str(state["500000032"][1])
    assert log["metadata"]["not_ready"] == 1
    assert q(staging_dsn, "SELECT sync_owner FROM raw_products WHERE sync_owner IS NOT NULL") == []
    agree(staging_dsn, prod)
    (row,) = q(prod, "SELECT * FROM catalog.products WHERE external_id = %s", (ready[0],))
    assert row["first_synced_at"] == row["synced_at"]
    assert row["sizes"] == ["S", "M"]

    # the collage arrives; collect fixes the price: both sync on the next run
    q(
        staging_dsn,
        "UPDATE raw_products SET image_status = 'collage_ready', collage_url = 'http://c/20.jpg'"
        " WHERE external_id = '500000020'",
    )
    q(staging_dsn, "UPDATE raw_products SET price = 12.5 WHERE external_id = '500000030'")
    sync(staging_dsn, prod)
    state = statuses(staging_dsn)
    assert state["500000020"] == ("synced", None)
    assert state["500000030"] == ("synced", None)
    agree(staging_dsn, prod)


def test_a_skipped_product_whose_collage_becomes_ready_is_reopened(
    staging_db: Database, staging_dsn: str, production_dsn_empty: str
) -> None:
    """image_status error is skipped; a retried download and collage reopen and sync it."""
    seed_rows(staging_dsn, 1, image_status="error")
    sync(staging_dsn, production_dsn_empty)
    assert statuses(staging_dsn)["500000000"][0] == "skipped"
    q(
        staging_dsn,
        "UPDATE raw_products SET image_status = 'collage_ready', collage_url = 'http://c/0.jpg'",
    )
    sync(staging_dsn, production_dsn_empty)
    assert statuses(staging_dsn)["500000000"] == ("synced", None)
    agree(staging_dsn, production_dsn_empty)


def test_delisted_becomes_inactive_and_rephotographed_keeps_the_verified_version(
    staging_db: Database, staging_dsn: str, production_dsn_empty: str
) -> None:
    """A delisted product stays in production inactive; one re-downloading keeps its last row."""
    prod = production_dsn_empty
    a, b, c = seed_ready(staging_dsn, 3)
    sync(staging_dsn, prod)
    q(staging_dsn, "UPDATE raw_products SET delisted_at = now() WHERE external_id = %s", (a,))
    q(
        staging_dsn,
        "UPDATE raw_products SET original_image_urls = '[\"https://static.zara.net/new.jpg\"]',"
        " name = 'NEW NAME' WHERE external_id = %s",
        (b,),
    )
    before = q(prod, "SELECT * FROM catalog.products WHERE external_id = %s", (b,))
    log = sync(staging_dsn, prod)
    assert log["metadata"]["deactivated"] == 1
    (row_a,) = q(prod, "SELECT is_active FROM catalog.products WHERE external_id = %s", (a,))
    assert row_a["is_active"] is False
    assert q(prod, "SELECT * FROM catalog.products WHERE external_id = %s", (b,)) == before
    assert statuses(staging_dsn)[b] == ("pending", None)
    assert statuses(staging_dsn)[a] == ("synced", None)
    # and a Ximilar completion on a synced row reopens it with the new record ids
    q(
        staging_dsn,
        'UPDATE raw_products SET ximilar_record_ids = \'["r1", "r2"]\' WHERE external_id = %s',
        (c,),
    )
    sync(staging_dsn, prod)
    (row_c,) = q(
        prod, "SELECT ximilar_record_ids FROM catalog.products WHERE external_id = %s", (c,)
    )
    assert row_c["ximilar_record_ids"] == ["r1", "r2"]


def test_a_second_run_writes_nothing(
    staging_db: Database, staging_dsn: str, production_dsn_empty: str
) -> None:
    """Right after a sync, another one changes no production row (same tuple, same times)."""
    prod = production_dsn_empty
    seed_ready(staging_dsn, 25)
    q(
        staging_dsn,
        "INSERT INTO raw_stores (brand, store_id, name) VALUES ('zara', 1236, 'Dubai Mall')",
    )
    q(
        staging_dsn,
        "INSERT INTO raw_availability (brand, store_id, product_id, sizes_in_stock, fetched_at)"
        ' SELECT \'zara\', 1236, external_id, \'[{"colour": "800", "size": "S",'
        ' "stock": 2}]\', now() FROM raw_products',
    )
    first = sync(staging_dsn, prod)
    assert first["metadata"]["products_changed"] == 25
    assert first["metadata"]["availability_changed"] == 25
    assert first["metadata"]["stores_changed"] == 1
    snapshot = {
        table: q(prod, f"SELECT xmin::text AS x, * FROM catalog.{table} ORDER BY 2, 3")
        for table in ("products", "stores", "availability")
    }
    second = sync(staging_dsn, prod)
    meta = second["metadata"]
    assert (meta["claimed"], meta["products_changed"]) == (0, 0)
    assert (meta["stores_changed"], meta["availability_changed"]) == (0, 0)
    for table, before in snapshot.items():
        assert q(prod, f"SELECT xmin::text AS x, * FROM catalog.{table} ORDER BY 2, 3") == before


def test_stores_and_the_latest_availability_reach_the_read_api(
    staging_db: Database, staging_dsn: str, production_dsn_empty: str
) -> None:
    """The newest answer per store and product is copied; in_stock reads it in one query."""
    prod = production_dsn_empty
    a, b = seed_ready(staging_dsn, 2)
    q(
        staging_dsn,
        "INSERT INTO raw_availability (brand, store_id, product_id, sizes_in_stock, fetched_at)"
        ' VALUES (\'zara\', 1, %(a)s, \'[{"colour": "800", "size": "S", "stock": 1}]\','
        "         now() - interval '1 day'),"
        '        (\'zara\', 1, %(a)s, \'[{"colour": "800", "size": "M", "stock": 1},'
        '                           {"colour": "801", "size": "M", "stock": 3},'
        '                           {"colour": "801", "size": "XL", "stock": null}]\','
        "         now()),"
        "        ('zara', 2, %(a)s, '[]', now()),"
        '        (\'zara\', 2, %(b)s, \'[{"colour": "800", "size": "L", "stock": 9}]\','
        "         now()),"
        '        (\'bershka\', 1, %(a)s, \'[{"colour": "1", "size": "S", "stock": 1}]\','
        "         now())",
        {"a": a, "b": b},
    )
    sync(staging_dsn, prod)
    with psycopg.connect(prod) as conn:
        assert in_stock(conn, "zara", [a, b, "missing"]) == {a: {1: ["M", "XL"]}, b: {2: ["L"]}}
        assert in_stock(conn, "zara", [a, b], store_ids=[2]) == {b: {2: ["L"]}}
        assert in_stock(conn, "zara", []) == {}
        assert in_stock(conn, "bershka", [a]) == {a: {1: ["S"]}}


def test_the_latest_availability_is_read_a_page_at_a_time(
    staging_db: Database, staging_dsn: str
) -> None:
    """Pages of at most ``page`` rows, every (brand, store, product) once, its newest answer."""
    from undecat.adapters.postgres.availability import PostgresSyncSource  # noqa: PLC0415

    q(
        staging_dsn,
        "INSERT INTO raw_availability (brand, store_id, product_id, sizes_in_stock, fetched_at)"
        " SELECT 'zara', s, 'p' || p, '[]', now() - make_interval(days => v)"
        " FROM generate_series(1, 3) s, generate_series(1, 7) p, generate_series(0, 1) v",
    )
    pages = list(PostgresSyncSource(staging_db).latest_availability(None, page=4))
    assert [len(page) for page in pages] == [4, 4, 4, 4, 4, 1]  # 21 rows, not 42
    records = [r for page in pages for r in page]
    assert len({(r.store_id, r.product_id) for r in records}) == 21
    newest = q(staging_dsn, "SELECT max(fetched_at) AS t FROM raw_availability")[0]["t"]
    assert {r.fetched_at for r in records} == {newest}


def test_production_down_marks_nothing_and_exits_non_zero(
    staging_db: Database,
    staging_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An unreachable production database: run failed, exit 1, every product still pending."""
    seed_ready(staging_dsn, 5)
    monkeypatch.setenv("STAGING_DB_URL", staging_dsn)
    down = f"postgresql://undeuser:secret-pw@127.0.0.1:{free_port()}/unde_main"
    monkeypatch.setenv("PRODUCTION_DB_URL", down)
    assert run_host("scraper", ["sync_to_production"]) == 1
    assert {s for s, _ in statuses(staging_dsn).values()} == {"pending"}
    (log,) = q(staging_dsn, "SELECT * FROM scraper_logs")
    assert log["status"] == "failed"
    assert "DatabaseUnavailableError" in log["error_message"]
    assert "secret-pw" not in log["error_message"]


def test_production_failing_mid_run_hands_the_claims_back(
    staging_db: Database, staging_dsn: str, pg_server: PgServer
) -> None:
    """Production refusing writes (dropped schema) fails the run; nothing is marked synced."""
    name = pg_server.create_database("t_sync_broken")
    try:
        broken = pg_server.dsn_for(name)
        q(broken, "CREATE SCHEMA catalog")  # no tables: every write fails
        seed_ready(staging_dsn, 5)
        log = sync(staging_dsn, broken)
        assert log["status"] == "failed"
        assert {s for s, _ in statuses(staging_dsn).values()} == {"pending"}
        leased = q(staging_dsn, "SELECT id FROM raw_products WHERE sync_owner IS NOT NULL")
        assert leased == []
    finally:
        pg_server.drop_database(name)


def test_killed_mid_run_and_restarted_both_databases_agree(
    staging_db: Database, staging_dsn: str, production_dsn_empty: str
) -> None:
    """SIGKILL of the runner mid-sync, leases lapsing, a restart: staging and production agree."""
    prod = production_dsn_empty
    total = 3000
    seed_ready(staging_dsn, total)
    env = {
        **os.environ,
        "STAGING_DB_URL": staging_dsn,
        "PRODUCTION_DB_URL": prod,
        "BATCH_SIZE": "50",
        "LEASE_SECONDS": "600",
    }
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "runners" / "scraper.py"), "sync_to_production"],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        synced = 0
        while time.monotonic() < deadline:
            (row,) = q(
                staging_dsn,
                "SELECT count(*) FILTER (WHERE sync_status = 'synced') AS n FROM raw_products",
            )
            synced = row["n"]
            if synced >= 200 or proc.poll() is not None:
                break
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
    assert 0 < synced < total, "the run was not caught mid-way"
    agree_before = q(prod, "SELECT count(*) AS n FROM catalog.products")[0]["n"]
    assert agree_before >= synced  # production is written before staging is marked
    # the dead worker's leases lapse; the next run takes its rows over
    q(
        staging_dsn,
        "UPDATE raw_products SET sync_lease_until = now() - interval '1 second'"
        " WHERE sync_owner IS NOT NULL",
    )
    log = sync(staging_dsn, prod, BATCH_SIZE="500")
    assert log["status"] == "success"
    assert {s for s, _ in statuses(staging_dsn).values()} == {"synced"}
    agree(staging_dsn, prod)


@pytest.fixture
def role_urls(pg_server: PgServer, staging_dsn: str, production_dsn: str) -> dict[str, str]:
    """Login URLs of scraper (staging), catalog_writer and catalog_reader (production)."""
    with psycopg.connect(pg_server.admin_dsn, autocommit=True) as conn:
        for role in ("scraper", "catalog_writer", "catalog_reader"):
            conn.execute(
                sql.SQL("ALTER ROLE {} WITH LOGIN PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(PASSWORD)
                )
            )

    def dbname(dsn: str) -> str:
        return str(psycopg.conninfo.conninfo_to_dict(dsn)["dbname"])

    return {
        "scraper": pg_server.dsn_for(dbname(staging_dsn), user="scraper", password=PASSWORD),
        "catalog_writer": pg_server.dsn_for(
            dbname(production_dsn), user="catalog_writer", password=PASSWORD
        ),
        "catalog_reader": pg_server.dsn_for(
            dbname(production_dsn), user="catalog_reader", password=PASSWORD
        ),
    }


def _denied(dsn: str, statement: str) -> None:
    with psycopg.connect(dsn) as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute(statement)  # test statements


def test_the_roles_can_do_their_part_and_no_more(
    staging_db: Database,
    staging_dsn: str,
    production_dsn_empty: str,
    role_urls: dict[str, str],
) -> None:
    """Scraper + catalog_writer run the whole sync; catalog_reader only reads; nothing in public."""
    seed_ready(staging_dsn, 4)
    q(staging_dsn, "INSERT INTO raw_stores (brand, store_id) VALUES ('zara', 1)")
    q(
        staging_dsn,
        "INSERT INTO raw_availability (brand, store_id, product_id, sizes_in_stock, fetched_at)"
        ' VALUES (\'zara\', 1, \'500000000\', \'[{"colour": "1", "size": "S", "stock": 1}]\','
        " now() - interval '100 days')",
    )
    log = sync(role_urls["scraper"], role_urls["catalog_writer"])
    assert log["status"] == "success", log["error_message"]
    agree(staging_dsn, production_dsn_empty)
    # the scraper deletes old availability (retention), nothing else
    with psycopg.connect(role_urls["scraper"], autocommit=True) as conn:
        conn.execute("DELETE FROM raw_availability WHERE fetched_at < now() - interval '90 days'")
    _denied(role_urls["scraper"], "DELETE FROM raw_products")
    _denied(role_urls["scraper"], "DELETE FROM raw_stores")
    # the reader reads, and only reads
    with psycopg.connect(role_urls["catalog_reader"]) as conn:
        assert in_stock(conn, "zara", ["500000000"]) == {"500000000": {1: ["S"]}}
        assert conn.execute("SELECT count(*) FROM catalog.products").fetchone() == (4,)
    reader = role_urls["catalog_reader"]
    _denied(reader, "UPDATE catalog.products SET name = 'x'")
    _denied(reader, "INSERT INTO catalog.stores (brand, store_id) VALUES ('zara', 9)")
    _denied(reader, "DELETE FROM catalog.availability")
    _denied(reader, "CREATE TABLE catalog.sneaky (x int)")
    writer = role_urls["catalog_writer"]
    _denied(writer, "DELETE FROM catalog.products")
    _denied(writer, "TRUNCATE catalog.availability")
    _denied(writer, "DROP TABLE catalog.stores")
    public = q(
        production_dsn_empty,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'",
    )
    assert [r["table_name"] for r in public] == ["schema_migrations"]


def test_the_scraper_role_runs_the_availability_jobs(
    staging_db: Database, staging_dsn: str, role_urls: dict[str, str], zara: Any
) -> None:
    """stores_refresh, availability_poll and availability_retention all run as `scraper`."""
    from tests.fix_zara import store_entry  # noqa: PLC0415

    seed_ready(staging_dsn, 2)
    zara.fake.stores = [store_entry(1300)]
    zara.fake.stock["500000000"] = {1300: [("S", 1)]}
    q(
        staging_dsn,
        "INSERT INTO raw_availability (brand, store_id, product_id, sizes_in_stock, fetched_at)"
        " VALUES ('zara', 1300, 'old', '[]', now() - interval '200 days')",
    )
    config = Config.from_env(
        {
            "STAGING_DB_URL": role_urls["scraper"],
            "ZARA_USER_AGENT": "ZaraApp/test",
            "ZARA_BASE_URL": zara.base_url(),
            "AVAILABILITY_DELAY_MIN": "0",
            "AVAILABILITY_DELAY_MAX": "0",
        }
    )
    with bootstrap(config) as jobs:  # the system clock: retention compares with now()
        for job in ("stores_refresh", "availability_poll", "availability_retention"):
            result = jobs.job("scraper", job).run()
            assert result.status == "success", (job, result.error_message)
    found = q(staging_dsn, "SELECT product_id, sizes_in_stock FROM raw_availability ORDER BY 1")
    assert [r["product_id"] for r in found] == ["500000000", "500000001"]
