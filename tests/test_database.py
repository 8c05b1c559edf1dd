"""The connection layer: clear outage errors, no leaked passwords, PgBouncer-safe statements."""

from __future__ import annotations

import psycopg
import pytest

from tests.fix_db import PgServer
from tests.fix_pgbouncer import BOUNCER_PASSWORD, Bouncer
from tests.seed import seed_rows
from undecat.adapters.postgres import Database, PostgresStatusReport
from undecat.adapters.postgres.embedded import EmbeddedPostgres, free_port
from undecat.domain.models import StatusCount
from undecat.errors import DatabaseUnavailableError
from undecat.redact import Secret


def test_unreachable_database_is_an_outage_naming_the_host() -> None:
    """Nobody listening: DatabaseUnavailableError at start-up, password masked."""
    url = f"postgresql://scraper:pw-never-shown@127.0.0.1:{free_port()}/unde_staging"
    with pytest.raises(DatabaseUnavailableError) as caught:
        Database(Secret(url))
    message = str(caught.value)
    assert "127.0.0.1" in message
    assert "pw-never-shown" not in message
    assert "scraper:***@" in message


def test_wrong_password_through_pgbouncer_is_an_outage(pgbouncer: Bouncer) -> None:
    """PgBouncer refusing the password is DatabaseUnavailableError without the password."""
    with pytest.raises(DatabaseUnavailableError) as caught:
        Database(Secret(pgbouncer.dsn_for("postgres", password="not-the-bouncer-pw")))
    assert "not-the-bouncer-pw" not in str(caught.value)
    assert "authentication failed" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_repr_hides_the_password(staging_dsn: str) -> None:
    """repr() of a pool shows the URL with the password masked."""
    with Database(Secret(staging_dsn)) as db:
        shown = repr(db)
    password = psycopg.conninfo.conninfo_to_dict(staging_dsn).get("password")
    if password:
        assert str(password) not in shown
    assert "***" in shown or not password


def test_the_same_statements_many_times_through_pgbouncer(
    pgbouncer: Bouncer, staging_dsn: str
) -> None:
    """Behind PgBouncer (transaction mode) repeated statements never hit prepared statements."""
    dbname = str(psycopg.conninfo.conninfo_to_dict(staging_dsn)["dbname"])
    assert BOUNCER_PASSWORD
    with Database(Secret(pgbouncer.dsn_for(dbname)), max_size=3) as db:
        report = PostgresStatusReport(db)
        for _ in range(30):  # psycopg would prepare after 5 executions by default
            assert isinstance(report.status_counts(), list)


def test_server_going_away_is_an_outage_then_recovers(pg_server: PgServer) -> None:
    """A server that dies mid-use gives DatabaseUnavailableError; after restart the pool works."""
    server = EmbeddedPostgres().start()
    try:
        with Database(Secret(server.dsn), max_size=2, timeout=3) as db:
            with db.transaction("probe") as cur:
                cur.execute("SELECT 1 AS one")
            server.kill()
            with pytest.raises(DatabaseUnavailableError), db.transaction("probe") as cur:
                cur.execute("SELECT 1 AS one")
            server.start()
            for _ in range(3):  # stale connections are replaced, not reused
                try:
                    with db.transaction("probe") as cur:
                        cur.execute("SELECT 1 AS one")
                        assert cur.fetchone() == {"one": 1}
                    break
                except DatabaseUnavailableError:
                    continue
            else:
                pytest.fail("the pool did not recover after the server came back")
    finally:
        server.stop()


def test_status_counts_group_by_brand_and_status(staging_db: Database, staging_dsn: str) -> None:
    """The status report counts active products by brand and their three statuses."""
    seed_rows(staging_dsn, 3)
    seed_rows(staging_dsn, 2, brand="oysho", start=10, image_status="uploaded")
    with psycopg.connect(staging_dsn, autocommit=True) as conn:
        conn.execute("UPDATE raw_products SET delisted_at = now() WHERE external_id = '500000000'")
    counts = PostgresStatusReport(staging_db).status_counts()
    assert counts == [
        StatusCount("oysho", "uploaded", "pending", "pending", 2),
        StatusCount("zara", "pending", "pending", "pending", 2),
    ]
