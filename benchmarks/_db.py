"""A throw-away staging database for benchmarks: UNDECAT_TEST_DSN's server, or an embedded one."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import psycopg
from psycopg import sql

from undecat.adapters.postgres import apply_migrations
from undecat.adapters.postgres.embedded import EmbeddedPostgres
from undecat.redact import Secret


@contextlib.contextmanager
def staging_database(prefix: str = "bench") -> Iterator[str]:
    """Yield the DSN of a fresh, migrated staging database; drop it (and its server) after."""
    server: EmbeddedPostgres | None = None
    admin = os.environ.get("UNDECAT_TEST_DSN")
    if not admin:
        server = EmbeddedPostgres().start()
        admin = server.dsn
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = psycopg.conninfo.make_conninfo(admin, dbname=name)
    try:
        apply_migrations(Secret(dsn), "staging")
        yield dsn
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        if server is not None:
            server.stop()
