"""Numbered SQL migrations, applied in order, each in its own transaction.

``sql/<database>/NNNN_name.sql`` files are applied in the order of their number. Each is
applied inside one transaction together with its row in ``schema_migrations`` (file name and
SHA-256), under a transaction-scoped advisory lock, so two hosts migrating at once apply each
file exactly once and a failing file leaves nothing behind. Before anything is applied, every
recorded file is checked against the disk: a file edited (or removed) after it was applied
stops the run with :class:`~undecat.errors.MigrationError`.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import attrs
import psycopg
from psycopg.rows import dict_row

from undecat.adapters.postgres.connection import password_of, translate_errors
from undecat.errors import MigrationError
from undecat.redact import Secret, redact_text

__all__ = ["DATABASES", "Migration", "apply_migrations", "load_migrations", "sql_root"]

DATABASES = ("staging", "production")
_FILE = re.compile(r"^(?P<number>\d{4})_[a-z0-9_]+\.sql$")
# Any constant shared by every migrating process; the key of the advisory lock.
_LOCK_KEY = 0x756E6465636174  # "undecat"

_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    filename TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)
"""


@attrs.frozen
class Migration:
    """One migration file."""

    number: int
    filename: str
    sql: str = attrs.field(repr=False)

    @property
    def sha256(self) -> str:
        """The checksum recorded when the file is applied."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


def sql_root() -> Path:
    """Return the folder holding ``staging/`` and ``production/`` migrations."""
    packaged = Path(__file__).resolve().parents[2] / "sql"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[4] / "sql"


def load_migrations(database: str, root: Path | None = None) -> list[Migration]:
    """Read the migration files of ``database`` in order; refuse misnamed or duplicate ones."""
    if database not in DATABASES:
        raise MigrationError(
            f"unknown database {database!r}; expected one of {', '.join(DATABASES)}"
        )
    folder = (root or sql_root()) / database
    if not folder.is_dir():
        raise MigrationError(f"no migrations folder at {folder}")
    migrations: list[Migration] = []
    seen: dict[int, str] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix != ".sql":
            continue
        match = _FILE.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_lower_case.sql")
        number = int(match["number"])
        if number in seen:
            raise MigrationError(f"{path.name} and {seen[number]} share the number {number:04d}")
        seen[number] = path.name
        migrations.append(Migration(number, path.name, path.read_text(encoding="utf-8")))
    return migrations


def apply_migrations(url: Secret, database: str, root: Path | None = None) -> list[str]:
    """Apply the pending migrations of ``database`` at ``url``; return the files applied."""
    migrations = load_migrations(database, root)
    applied_now: list[str] = []
    secrets = password_of(url.reveal())
    with (
        translate_errors(f"migrating the {database} database", secrets=secrets),
        psycopg.connect(
            url.reveal(), prepare_threshold=None, row_factory=dict_row, connect_timeout=10
        ) as conn,
    ):
        with conn.transaction():
            _lock(conn)
            conn.execute(_BOOKKEEPING)
            recorded = _recorded(conn)
        _check_unchanged(migrations, recorded)
        for migration in migrations:
            if migration.filename in recorded:
                continue
            with conn.transaction():
                _lock(conn)
                if conn.execute(
                    "SELECT 1 FROM schema_migrations WHERE filename = %s", (migration.filename,)
                ).fetchone():
                    continue  # another host applied it while we waited for the lock
                try:
                    conn.execute(migration.sql.encode())
                except psycopg.Error as exc:
                    first = redact_text(str(exc).strip().splitlines()[0], secrets)
                    raise MigrationError(
                        f"{migration.filename} failed, nothing of it applied: {first}"
                    ) from exc
                conn.execute(
                    "INSERT INTO schema_migrations (filename, sha256) VALUES (%s, %s)",
                    (migration.filename, migration.sha256),
                )
            applied_now.append(migration.filename)
    return applied_now


def _lock(conn: psycopg.Connection[Any]) -> None:
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))


def _recorded(conn: psycopg.Connection[dict[str, Any]]) -> dict[str, str]:
    rows = conn.execute("SELECT filename, sha256 FROM schema_migrations").fetchall()
    return {row["filename"]: row["sha256"] for row in rows}


def _check_unchanged(migrations: list[Migration], recorded: dict[str, str]) -> None:
    on_disk = {m.filename: m for m in migrations}
    for filename, sha in sorted(recorded.items()):
        migration = on_disk.get(filename)
        if migration is None:
            raise MigrationError(
                f"{filename} was applied but is missing from the migrations folder"
            )
        if migration.sha256 != sha:
            raise MigrationError(
                f"{filename} was edited after it was applied (recorded sha256 {sha[:12]}, "
                f"file now {migration.sha256[:12]}); add a new migration instead"
            )
