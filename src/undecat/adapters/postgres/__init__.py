"""PostgreSQL adapters (psycopg 3 + psycopg_pool), safe behind PgBouncer in transaction mode."""

from undecat.adapters.postgres.catalog import PostgresCatalogStore
from undecat.adapters.postgres.connection import Database, translate_errors
from undecat.adapters.postgres.migrate import apply_migrations, load_migrations
from undecat.adapters.postgres.queue import PostgresWorkQueue
from undecat.adapters.postgres.runs import PostgresRunRecorder, PostgresStatusReport
from undecat.adapters.postgres.ximilar_ledger import PostgresXimilarLedger

__all__ = [
    "Database",
    "PostgresCatalogStore",
    "PostgresRunRecorder",
    "PostgresStatusReport",
    "PostgresWorkQueue",
    "PostgresXimilarLedger",
    "apply_migrations",
    "load_migrations",
    "translate_errors",
]
