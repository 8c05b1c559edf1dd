"""Quick end-to-end check of the fixtures (to be folded into the real suites)."""

import psycopg

from tests.fix_pgbouncer import Bouncer
from undecat.adapters.postgres import Database
from undecat.redact import Secret


def test_migrated_database_has_the_tables(staging_db: Database) -> None:
    """The module database carries the document's four tables."""
    with staging_db.transaction("probe") as cur:
        cur.execute("SELECT count(*) AS n FROM raw_products")
        assert cur.fetchone() == {"n": 0}


def test_pgbouncer_routes(pgbouncer: Bouncer, staging_dsn: str) -> None:
    """PgBouncer in transaction mode reaches the module database."""
    dbname = psycopg.conninfo.conninfo_to_dict(staging_dsn)["dbname"]
    db = Database(Secret(pgbouncer.dsn_for(str(dbname))))
    with db.transaction("probe") as cur:
        cur.execute("SELECT count(*) AS n FROM scraper_logs")
        assert cur.fetchone() == {"n": 0}
    db.close()
