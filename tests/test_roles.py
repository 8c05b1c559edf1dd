"""The document's database users as least-privilege roles: what each may do, and may not."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import errors

from tests.fix_db import PgServer
from tests.seed import column_values, draft, seed_rows
from undecat.adapters.postgres import (
    Database,
    PostgresCatalogStore,
    PostgresRunRecorder,
    PostgresWorkQueue,
)
from undecat.domain.models import RunResult
from undecat.domain.stages import (
    CollageStored,
    PhotosStored,
    ProductionDone,
    Stage,
    XimilarProgress,
)
from undecat.domain.status import SyncStatus, XimilarStatus
from undecat.redact import Secret

ROLES = ("apify", "downloader", "ximilar", "scraper", "collage")
PASSWORD = "role-test-password"
LONG = timedelta(minutes=5)


@pytest.fixture(scope="module")
def role_dsn(pg_server: PgServer, staging_dsn: str) -> dict[str, str]:
    """A DSN per role on the module's staging database (the roles get a test password)."""
    with psycopg.connect(pg_server.admin_dsn, autocommit=True) as conn:
        for role in ROLES:
            conn.execute(
                psycopg.sql.SQL("ALTER ROLE {} WITH LOGIN PASSWORD {}").format(
                    psycopg.sql.Identifier(role), psycopg.sql.Literal(PASSWORD)
                )
            )
    dbname = str(psycopg.conninfo.conninfo_to_dict(staging_dsn)["dbname"])
    return {role: pg_server.dsn_for(dbname, user=role, password=PASSWORD) for role in ROLES}


@pytest.fixture
def as_role(role_dsn: dict[str, str], staging_db: Database) -> Iterator[dict[str, Database]]:
    """A pool per role, opened lazily."""
    opened: dict[str, Database] = {}

    class _Pools(dict[str, Database]):
        def __missing__(self, role: str) -> Database:
            opened[role] = Database(Secret(role_dsn[role]), name=role, max_size=2)
            self[role] = opened[role]
            return opened[role]

    yield _Pools()
    for db in opened.values():
        db.close()


def _denied(dsn: str, statement: str) -> None:
    with psycopg.connect(dsn) as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute(statement)  # test statements


def test_downloader_writes_photos_but_not_prices(
    as_role: dict[str, Database], role_dsn: dict[str, str], staging_dsn: str
) -> None:
    """The downloader claims and completes its stage, and cannot change a price."""
    seed_rows(staging_dsn, 1)
    queue = PostgresWorkQueue(as_role["downloader"], Stage.DOWNLOAD)
    (claim,) = queue.claim("dl", 1, LONG)
    assert queue.complete(claim, PhotosStored(("http://s3/1.jpg",)))
    assert list(column_values(staging_dsn, "image_status").values()) == ["uploaded"]
    _denied(role_dsn["downloader"], "UPDATE raw_products SET price = 1")
    _denied(role_dsn["downloader"], "UPDATE raw_products SET ximilar_status = 'synced'")
    _denied(role_dsn["downloader"], "UPDATE raw_products SET collage_owner = 'me'")


def test_apify_upserts_and_resets_downstream_without_touching_ximilar_columns(
    as_role: dict[str, Database], role_dsn: dict[str, str], staging_dsn: str
) -> None:
    """The collect role upserts (the photo-change reset included) but cannot set Ximilar state."""
    store = PostgresCatalogStore(as_role["apify"])
    now = datetime.now(UTC)
    assert store.upsert_products([draft(1)], now).new == 1
    with psycopg.connect(staging_dsn, autocommit=True) as conn:
        conn.execute(
            "UPDATE raw_products SET image_status = 'collage_ready', ximilar_status = 'synced'"
        )
    changed = draft(1, original_image_urls=("https://static.zara.net/new/1.jpg",))
    assert store.upsert_products([changed], now).photos_changed == 1
    assert list(column_values(staging_dsn, "ximilar_status").values()) == ["pending"]
    assert list(column_values(staging_dsn, "image_status").values()) == ["pending"]
    _denied(role_dsn["apify"], "UPDATE raw_products SET ximilar_status = 'synced'")
    _denied(role_dsn["apify"], "UPDATE raw_products SET image_status = 'uploaded'")
    _denied(role_dsn["apify"], "UPDATE raw_products SET sync_status = 'synced'")


def test_collage_and_ximilar_and_scraper_write_only_their_stage(
    as_role: dict[str, Database], role_dsn: dict[str, str], staging_dsn: str
) -> None:
    """Each remaining host completes its own stage and is refused the others' columns."""
    seed_rows(staging_dsn, 1, image_status="uploaded", index_scope="pilot")
    collage = PostgresWorkQueue(as_role["collage"], Stage.COLLAGE)
    (c,) = collage.claim("c", 1, LONG)
    assert collage.complete(c, CollageStored("http://s3/collages/zara/1.jpg"))
    ximilar = PostgresWorkQueue(as_role["ximilar"], Stage.XIMILAR)
    (x,) = ximilar.claim("x", 1, LONG)
    assert ximilar.complete(x, XimilarProgress(("u",), ("r",), XimilarStatus.PARTIAL))
    sync = PostgresWorkQueue(as_role["scraper"], Stage.SYNC)
    (s,) = sync.claim("s", 1, LONG)
    assert sync.complete(s, ProductionDone(SyncStatus.SKIPPED, "no price"))

    _denied(role_dsn["collage"], "UPDATE raw_products SET image_urls = '[]'")
    _denied(role_dsn["collage"], "UPDATE raw_products SET price = 1")
    _denied(role_dsn["ximilar"], "UPDATE raw_products SET image_status = 'error'")
    _denied(role_dsn["ximilar"], "UPDATE raw_products SET index_scope = 'pilot'")
    _denied(role_dsn["scraper"], "UPDATE raw_products SET price = 1")
    _denied(role_dsn["scraper"], "UPDATE raw_products SET image_status = 'error'")
    with psycopg.connect(role_dsn["scraper"]) as conn:
        conn.execute(
            "INSERT INTO raw_stores (brand, store_id, name) VALUES ('zara', 1, 'Dubai Mall')"
        )
        conn.execute(
            "INSERT INTO raw_availability (brand, store_id, product_id, sizes_in_stock, fetched_at)"
            " VALUES ('zara', 1, '500000000', '[\"M\"]', now())"
        )


@pytest.mark.parametrize("role", ROLES)
def test_no_role_deletes_or_changes_the_schema(role: str, role_dsn: dict[str, str]) -> None:
    """DELETE, TRUNCATE, CREATE and DROP are refused to every runner role."""
    dsn = role_dsn[role]
    _denied(dsn, "DELETE FROM raw_products")
    _denied(dsn, "DELETE FROM scraper_logs")
    _denied(dsn, "TRUNCATE raw_availability")
    _denied(dsn, "CREATE TABLE sneaky (x int)")
    _denied(dsn, "DROP TABLE raw_stores")
    _denied(dsn, "ALTER TABLE raw_products ADD COLUMN sneaky int")


@pytest.mark.parametrize("role", ROLES)
def test_every_role_logs_its_runs(role: str, as_role: dict[str, Database]) -> None:
    """Every runner role opens and closes its scraper_logs row."""
    recorder = PostgresRunRecorder(as_role[role])
    run = recorder.start(f"{role}_job")
    recorder.finish(run, RunResult(status="success", records_fetched=3))
    (log,) = recorder.recent(f"{role}_job")
    assert (log.status, log.records_fetched) == ("success", 3)
    assert log.completed_at is not None
