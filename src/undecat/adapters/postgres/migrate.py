"""Numbered SQL migrations, applied in order, each in its own transaction.

``sql/<database>/NNNN_name.sql`` files are applied in the order of their number. Each is
applied inside one transaction together with its row in ``schema_migrations`` (file name and
SHA-256), while the run holds a session advisory lock (taken by polling, see ``_acquire``), so
two hosts migrating at once apply each file exactly once and a failing file leaves nothing
behind. ``migrate`` therefore connects to PostgreSQL directly, never through PgBouncer.
Before anything is applied, every recorded file is checked against the disk: a file edited
(or removed) after it was applied stops the run with :class:`~undecat.errors.MigrationError`.

**Lock timeout.** Each file runs with ``lock_timeout`` (``MIGRATE_LOCK_TIMEOUT``, default
5 s): a long read holding a table makes the ``ALTER`` give up instead of waiting (and making
every job's query queue behind it); the file is retried (``MIGRATE_ATTEMPTS``) after a pause,
then the run stops with a MigrationError naming the lock.

**No-transaction files.** ``CREATE INDEX CONCURRENTLY`` cannot run inside a transaction. A
file whose first line is ``-- undecat: no-transaction`` is run one statement at a time in
autocommit, under a session advisory lock (``migrate`` connects to PostgreSQL directly, as
the owner, never through PgBouncer), and recorded in ``schema_migrations`` only after its
last statement succeeded. Such a file must be re-runnable: every index is
``CREATE INDEX CONCURRENTLY IF NOT EXISTS``, and an index a failed run left ``INVALID`` is
dropped (concurrently) before the file runs again.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import psycopg
import tenacity
from psycopg.rows import dict_row

from undecat.adapters.postgres.connection import password_of, translate_errors
from undecat.errors import MigrationError
from undecat.redact import Secret, redact_text

__all__ = ["DATABASES", "Migration", "apply_migrations", "load_migrations", "sql_root"]

DATABASES = ("staging", "production")
_FILE = re.compile(r"^(?P<number>\d{4})_[a-z0-9_]+\.sql$")
_NO_TRANSACTION = "-- undecat: no-transaction"
_CONCURRENT_INDEX = re.compile(
    r"CREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY\s+IF\s+NOT\s+EXISTS\s+(\w+)", re.I
)
_CONCURRENT_ANY = re.compile(r"CREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY", re.I)
_LOCK_NOT_AVAILABLE = "55P03"


def _code(text: str) -> bool:
    """Whether ``text`` holds SQL besides comments and blank lines."""
    return any(line.strip() and not line.strip().startswith("--") for line in text.splitlines())


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

    @property
    def transactional(self) -> bool:
        """False for a file marked ``-- undecat: no-transaction`` (e.g. concurrent indexes)."""
        first = self.sql.lstrip().split("\n", 1)[0].strip().lower()
        return first != _NO_TRANSACTION

    def statements(self) -> list[str]:
        """The file's statements, for a no-transaction file.

        A statement ends at a line ending in ``;`` outside a ``$$`` body (function bodies
        keep their inner semicolons).
        """
        statements: list[str] = []
        current: list[str] = []
        in_body = False
        for line in self.sql.splitlines():
            current.append(line)
            if line.count("$$") % 2:
                in_body = not in_body
            ends = line.rstrip().endswith(";") and not line.lstrip().startswith("--")
            if ends and not in_body:
                text = "\n".join(current).strip()
                if _code(text):
                    statements.append(text)
                current = []
        if _code("\n".join(current)):
            statements.append("\n".join(current).strip())
        return statements

    def concurrent_indexes(self) -> list[str]:
        """Names of the indexes this file creates concurrently."""
        return _CONCURRENT_INDEX.findall(self.sql)


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


def apply_migrations(
    url: Secret,
    database: str,
    root: Path | None = None,
    *,
    lock_timeout: float = 5.0,
    attempts: int = 5,
    sleep: Callable[[float], None] = time.sleep,
) -> list[str]:
    """Apply the pending migrations of ``database`` at ``url``; return the files applied.

    Each file waits at most ``lock_timeout`` seconds for a table lock and is tried up to
    ``attempts`` times (pausing between tries) before the run stops with a MigrationError.
    """
    migrations = load_migrations(database, root)
    for migration in migrations:
        if not migration.transactional and len(migration.concurrent_indexes()) != len(
            _CONCURRENT_ANY.findall(migration.sql)
        ):
            raise MigrationError(
                f"{migration.filename}: a no-transaction file must be re-runnable:"
                " write CREATE INDEX CONCURRENTLY IF NOT EXISTS"
            )
    secrets = password_of(url.reveal())
    with (
        translate_errors(f"migrating the {database} database", secrets=secrets),
        psycopg.connect(
            url.reveal(), prepare_threshold=None, row_factory=dict_row, connect_timeout=10
        ) as conn,
    ):
        _acquire(conn, sleep)
        try:
            return _apply_all(
                conn,
                migrations,
                lock_timeout=lock_timeout,
                attempts=attempts,
                secrets=secrets,
                sleep=sleep,
            )
        finally:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))


def _apply_all(
    conn: psycopg.Connection[Any],
    migrations: list[Migration],
    *,
    lock_timeout: float,
    attempts: int,
    secrets: tuple[str, ...],
    sleep: Callable[[float], None],
) -> list[str]:
    applied_now: list[str] = []
    with conn.transaction():
        conn.execute(_BOOKKEEPING)
        recorded = _recorded(conn)
    _check_unchanged(migrations, recorded)
    for migration in migrations:
        if migration.filename in recorded:
            continue
        # Each try waits 2, 4, 8, 16, then 30 s before the next (tenacity, through ``sleep``).
        policy = tenacity.Retrying(
            sleep=sleep,
            stop=tenacity.stop_after_attempt(attempts),
            wait=tenacity.wait_exponential(multiplier=2, max=30),
            retry=tenacity.retry_if_exception_type(_LockTimeoutError),
            reraise=True,
        )
        try:
            done = policy(_apply_one, conn, migration, lock_timeout, secrets)
        except _LockTimeoutError as exc:
            raise MigrationError(
                f"{migration.filename} not applied: a table it changes stayed"
                f" locked (lock_timeout {lock_timeout:g} s, {attempts} attempts):"
                f" {exc}; wait for long queries to end (pg_stat_activity) and run"
                " undecat migrate again"
            ) from exc
        if done:
            applied_now.append(migration.filename)
    return applied_now


class _LockTimeoutError(Exception):
    """A statement of a migration gave up waiting for a lock (SQLSTATE 55P03)."""


def _apply_one(
    conn: psycopg.Connection[Any],
    migration: Migration,
    lock_timeout: float,
    secrets: tuple[str, ...],
) -> bool:
    """Apply one file (True) or find it applied by another host meanwhile (False)."""
    timeout_ms = max(1, round(lock_timeout * 1000))
    if not migration.transactional:
        return _apply_outside_transaction(conn, migration, timeout_ms, secrets)
    with conn.transaction():
        if conn.execute(
            "SELECT 1 FROM schema_migrations WHERE filename = %s", (migration.filename,)
        ).fetchone():
            return False  # another host applied it while we waited for the lock
        conn.execute(f"SET LOCAL lock_timeout = {timeout_ms}")
        try:
            conn.execute(migration.sql.encode())
        except psycopg.Error as exc:
            first = redact_text(str(exc).strip().splitlines()[0], secrets)
            if exc.sqlstate == _LOCK_NOT_AVAILABLE:
                raise _LockTimeoutError(first) from exc
            raise MigrationError(
                f"{migration.filename} failed, nothing of it applied: {first}"
            ) from exc
        _record(conn, migration)
    return True


def _apply_outside_transaction(
    conn: psycopg.Connection[Any], migration: Migration, timeout_ms: int, secrets: tuple[str, ...]
) -> bool:
    conn.autocommit = True
    try:
        if conn.execute(
            "SELECT 1 FROM schema_migrations WHERE filename = %s", (migration.filename,)
        ).fetchone():
            return False
        conn.execute(f"SET lock_timeout = {timeout_ms}")
        for name in migration.concurrent_indexes():
            # A concurrent build that failed leaves an INVALID index; IF NOT EXISTS
            # would then skip it for ever, so it is dropped first.
            invalid = conn.execute(
                "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
                " WHERE c.relname = %s AND NOT i.indisvalid AND pg_table_is_visible(c.oid)",
                (name,),
            ).fetchone()
            if invalid:
                conn.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"')
        for statement in migration.statements():
            try:
                conn.execute(statement.encode())
            except psycopg.Error as exc:
                first = redact_text(str(exc).strip().splitlines()[0], secrets)
                if exc.sqlstate == _LOCK_NOT_AVAILABLE:
                    raise _LockTimeoutError(first) from exc
                raise MigrationError(
                    f"{migration.filename} failed (a no-transaction file: the statements"
                    f" before this one stay applied; it is re-run as a whole): {first}"
                ) from exc
        _record(conn, migration)
        return True
    finally:
        conn.execute("RESET lock_timeout")
        conn.autocommit = False


def _record(conn: psycopg.Connection[Any], migration: Migration) -> None:
    conn.execute(
        "INSERT INTO schema_migrations (filename, sha256) VALUES (%s, %s)",
        (migration.filename, migration.sha256),
    )


def _acquire(
    conn: psycopg.Connection[Any], sleep: Callable[[float], None], *, wait: float = 3600.0
) -> None:
    """Take the migrators' session advisory lock, polling (never waiting inside a query).

    A query blocked on the lock would hold a snapshot, and ``CREATE INDEX CONCURRENTLY``
    run by the host holding it waits for every older snapshot: a deadlock. Polling with
    ``pg_try_advisory_lock`` keeps every waiting statement short.
    """
    deadline = time.monotonic() + wait
    pause = 0.05
    while True:
        with conn.transaction():
            row = conn.execute("SELECT pg_try_advisory_lock(%s) AS ok", (_LOCK_KEY,)).fetchone()
        if row and row["ok"]:
            return
        if time.monotonic() > deadline:
            raise MigrationError(
                f"another undecat migrate held the migration lock for {wait:g} s; is one stuck?"
            )
        sleep(pause)
        pause = min(pause * 2, 1.0)


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
