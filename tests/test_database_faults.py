"""Database faults the operator must fix are outages, and a dead database fails in seconds."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import quote

import psycopg
import pytest

from tests.fake_apify import TOKEN, FakeApify, RunPlan
from tests.fix_db import PgServer
from tests.seed import draft
from tests.strategies import zara_item
from undecat.adapters.postgres import Database, PostgresCatalogStore
from undecat.adapters.postgres.connection import DEFAULT_CONNECT_TIMEOUT
from undecat.bootstrap import bootstrap
from undecat.config import Config
from undecat.errors import (
    DatabaseConfigurationError,
    DatabaseCredentialsError,
    DatabaseUnavailableError,
)
from undecat.redact import Secret

TASK = "z1psVOTyIKFdU5N9n"
PASSWORD = "role-test-password"


@pytest.fixture(scope="module")
def downloader_dsn(pg_server: PgServer, staging_dsn: str) -> str:
    """The module's staging database as the ``downloader`` role (no INSERT on raw_products)."""
    with psycopg.connect(pg_server.admin_dsn, autocommit=True) as conn:
        conn.execute(f"ALTER ROLE downloader WITH LOGIN PASSWORD '{PASSWORD}'")
    dbname = str(psycopg.conninfo.conninfo_to_dict(staging_dsn)["dbname"])
    return pg_server.dsn_for(dbname, user="downloader", password=PASSWORD)


def test_permission_denied_stops_collect_as_an_outage_naming_role_and_table(
    fake_apify: FakeApify, staging_db: Database, downloader_dsn: str
) -> None:
    """A role without INSERT fails the run naming role and table; no item is rejected for it."""
    fake_apify.plan(TASK, RunPlan(items=[zara_item(n) for n in range(1, 41)]))
    config = Config(
        staging_db_url=Secret(downloader_dsn),
        apify_token=Secret(TOKEN),
        apify_api_url=fake_apify.url,
        apify_tasks={"zara": TASK},
    )
    # --no-delist: the upserts alone decide the outcome (as in a backfill), so a denial
    # read as bad data would show as 40 rejected items and a 'partial' run.
    with bootstrap(config, argv=("--no-delist",)) as jobs:
        result = jobs.job("apify", "apify_zara").run()
    assert result.status == "failed"
    assert result.records_errors == 0
    assert result.error_message is not None
    assert "downloader" in result.error_message
    assert "raw_products" in result.error_message
    assert PASSWORD not in result.error_message
    with staging_db.transaction("read") as cur:
        cur.execute("SELECT count(*) AS n FROM raw_products")
        assert cur.fetchone() == {"n": 0}
        cur.execute("SELECT status, records_errors, error_message FROM scraper_logs")
        logged = cur.fetchall()
    assert [(r["status"], r["records_errors"]) for r in logged] == [("failed", 0)]
    assert "downloader" in logged[0]["error_message"]


def test_missing_table_and_column_are_configuration_errors(
    pg_server: PgServer, empty_dsn: str, staging_db: Database
) -> None:
    """An unmigrated database, or a column that is not there, names the role and the object."""
    with (
        Database(Secret(empty_dsn), max_size=1) as db,
        pytest.raises(DatabaseConfigurationError) as caught,
    ):
        PostgresCatalogStore(db).count_active("apify_zara")
    message = str(caught.value)
    assert "raw_products" in message
    assert repr(pg_server.user) in message
    assert "migrat" in message
    with (
        pytest.raises(DatabaseConfigurationError) as column,
        staging_db.transaction("probe") as cur,
    ):
        cur.execute("SELECT no_such_column FROM raw_products")
    assert "no_such_column" in str(column.value)


def test_read_only_database_is_a_configuration_error(staging_dsn: str) -> None:
    """A read-only session (a standby, or default_transaction_read_only) is an outage."""
    options = quote("-c default_transaction_read_only=on", safe="")
    with (
        Database(Secret(f"{staging_dsn}?options={options}"), max_size=1) as db,
        pytest.raises(DatabaseConfigurationError) as caught,
    ):
        PostgresCatalogStore(db).upsert_products([draft(1)], datetime.now(UTC))
    assert "read-only" in str(caught.value)


def test_refused_login_names_the_role_not_the_password(
    pg_server: PgServer, staging_dsn: str
) -> None:
    """A wrong password is a credentials error naming the role and variable, never the password."""
    dbname = str(psycopg.conninfo.conninfo_to_dict(staging_dsn)["dbname"])
    url = pg_server.dsn_for(dbname, user="collage", password="not-the-right-one")
    with pytest.raises(DatabaseCredentialsError) as caught:
        Database(Secret(url))
    assert "'collage'" in str(caught.value)
    assert "STAGING_DB_URL" in str(caught.value)
    assert "not-the-right-one" not in str(caught.value)


class Relay:
    """A TCP relay to PostgreSQL that can be cut, standing in for the server dying."""

    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._cut = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self._target)
            with self._lock:
                if self._cut:  # accepted just before the cut: dies with the rest
                    client.close()
                    server.close()
                    return
                self._sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Refuse new connections and drop every open one (the server is gone)."""
        with self._lock:
            self._cut = True
            self._listener.close()
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()


def test_a_dead_database_fails_a_call_within_the_connect_timeout(
    pg_server: PgServer, staging_dsn: str
) -> None:
    """Once the server is gone, a call gives up within DEFAULT_CONNECT_TIMEOUT (<= 5 s), not 30."""
    assert DEFAULT_CONNECT_TIMEOUT <= 5
    relay = Relay((pg_server.host, pg_server.port))
    dbname = str(psycopg.conninfo.conninfo_to_dict(staging_dsn)["dbname"])
    url = (
        f"postgresql://{quote(pg_server.user)}:{quote(pg_server.password)}"
        f"@127.0.0.1:{relay.port}/{dbname}"
    )
    with Database(Secret(url), max_size=2) as db:
        with db.transaction("probe") as cur:
            cur.execute("SELECT 1")
        relay.cut()
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailableError), db.transaction("probe") as cur:
            cur.execute("SELECT 1")
        elapsed = time.monotonic() - started
    assert elapsed < DEFAULT_CONNECT_TIMEOUT + 2


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word (a hung server)."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=16)
    try:
        yield int(listener.getsockname()[1])
    finally:
        listener.close()


def test_connect_timeout_comes_from_the_environment(black_hole: int) -> None:
    """DB_CONNECT_TIMEOUT bounds the wait for a server that never answers."""
    url = f"postgresql://apify:pw@127.0.0.1:{black_hole}/unde_staging"
    config = Config.from_env({"STAGING_DB_URL": url, "DB_CONNECT_TIMEOUT": "2"})
    assert config.db_connect_timeout == 2
    assert Config.from_env({}).db_connect_timeout == DEFAULT_CONNECT_TIMEOUT
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailableError), bootstrap(config) as jobs:
        jobs.resources.staging_db()
    assert time.monotonic() - started < 4.5
