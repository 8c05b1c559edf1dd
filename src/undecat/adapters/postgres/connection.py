"""Connections and pools that work behind PgBouncer in transaction mode.

No session state survives a transaction there, so: ``prepare_threshold=None`` (no
server-side prepared statements), no ``SET`` outside a transaction, no session advisory
locks, no ``LISTEN``. psycopg's errors are translated here into the undecat tree, with
credentials removed from every message.
"""

from __future__ import annotations

import re
import time
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import psycopg
import psycopg_pool
from psycopg.rows import dict_row

from undecat.errors import (
    DatabaseConfigurationError,
    DatabaseCredentialsError,
    DatabaseUnavailableError,
    UndecatError,
)
from undecat.redact import Secret, redact_text, redact_url

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "Database",
    "password_of",
    "role_of",
    "translate_errors",
]

#: Seconds to wait for a connection (to open one, or for the pool to hand one out) before
#: the database counts as down: a dead server fails a run in seconds, not minutes.
DEFAULT_CONNECT_TIMEOUT = 5.0

#: SQLSTATEs that no row's data can cause: our role, our schema or the server's mode is
#: wrong. Outages with a message for the operator, never a product's ``error``.
_CONFIGURATION_STATES: Mapping[str, str] = {
    "42501": "insufficient privilege: grant the role what it needs (sql/staging/0003_roles.sql)",
    "42P01": "undefined table: the database is not migrated: run `undecat migrate`",
    "42703": "undefined column: the database is not migrated: run `undecat migrate`",
    "42883": "undefined function: the database is not migrated: run `undecat migrate`",
    "42704": "undefined object: the database is not migrated: run `undecat migrate`",
    "3F000": "undefined schema: the database is not migrated: run `undecat migrate`",
    "25006": "read-only transaction: a standby, or default_transaction_read_only is on",
    "28000": "authentication failed: check the role and the server's pg_hba.conf",
    "28P01": "authentication failed: check the password in the database URL",
    "3D000": "no such database: check the database URL",
}
# libpq reports a refused login at connect time without a SQLSTATE; its text is stable.
_LOGIN_REFUSED = re.compile(
    r'password authentication failed|authentication failed for user|role "[^"]*" does not exist'
    r'|no pg_hba\.conf entry|database "[^"]*" does not exist'
    r"|no password supplied|SASL authentication",
    re.IGNORECASE,
)

#: A pooled connection given back less than this many seconds ago is handed out again
#: without the pool's liveness check (a round trip: at the private network's latency, a
#: quarter of a one-statement transaction). A connection idle for longer is checked.
_CHECK_AFTER_IDLE = 1.0


class _IdleCheck:
    """The pool's connection check, made only for connections idle for a while."""

    def __init__(self, after_idle: float) -> None:
        self._after_idle = after_idle
        self._returned: weakref.WeakKeyDictionary[psycopg.Connection[Any], float] = (
            weakref.WeakKeyDictionary()
        )

    def returned(self, conn: psycopg.Connection[Any]) -> None:
        """Note when ``conn`` was made (the pool's ``configure``) or last used.

        Not the pool's ``reset`` callback: with one, the pool hands every returned
        connection to a worker thread, and the next checkout may wait for it.
        """
        self._returned[conn] = time.monotonic()

    def check(self, conn: psycopg.Connection[Any]) -> None:
        """Check ``conn`` unless it was in use a moment ago (the pool's ``check`` callback)."""
        last = self._returned.pop(conn, None)
        if last is None or time.monotonic() - last > self._after_idle:
            psycopg_pool.ConnectionPool.check_connection(conn)


def _connect_kwargs() -> dict[str, Any]:
    # autocommit: a transaction is always explicit (Database.transaction sends BEGIN and
    # COMMIT), and a lone statement (Database.statement) needs neither.
    return {"prepare_threshold": None, "row_factory": dict_row, "autocommit": True}


def _first_line(exc: BaseException, secrets: tuple[str, ...]) -> str:
    text = str(exc).strip()
    return redact_text(text.splitlines()[0] if text else type(exc).__name__, secrets)


def _login_refused(exc: psycopg.Error) -> bool:
    """Whether the server (or PgBouncer) refused the user or password."""
    return exc.sqlstate in ("28P01", "28000") or (
        exc.sqlstate is None and _LOGIN_REFUSED.search(str(exc)) is not None
    )


def _configuration_problem(exc: psycopg.Error) -> str | None:
    """What is misconfigured, when ``exc`` is a configuration-class error; else None."""
    state = exc.sqlstate
    if state is not None and state in _CONFIGURATION_STATES:
        return f"SQLSTATE {state}, {_CONFIGURATION_STATES[state]}"
    return None


def _object_of(exc: psycopg.Error) -> str | None:
    """The schema object an error is about, from the server's diagnostics."""
    diag = exc.diag
    parts = [p for p in (diag.schema_name, diag.table_name, diag.column_name) if p]
    return ".".join(parts) or None


@contextmanager
def translate_errors(
    what: str,
    *,
    secrets: tuple[str, ...] = (),
    role: str | None = None,
    variable: str = "STAGING_DB_URL",
) -> Iterator[None]:
    """Turn psycopg's exceptions raised inside the block into undecat errors.

    A refused user or password is :class:`~undecat.errors.DatabaseCredentialsError` naming
    ``variable``; other configuration-class errors (privilege, a missing table or column --
    a database not migrated: "run `undecat migrate`" --, read-only) are
    :class:`~undecat.errors.DatabaseConfigurationError` naming ``role`` and the object; a
    server that cannot be reached :class:`~undecat.errors.DatabaseUnavailableError`;
    anything else (a value the schema refuses) a plain :class:`~undecat.errors.UndecatError`.
    """
    try:
        yield
    except UndecatError:
        raise
    except psycopg_pool.PoolTimeout as exc:
        message = _first_line(exc, secrets)
        raise DatabaseUnavailableError(f"{what}: database unavailable: {message}") from exc
    except psycopg.Error as exc:
        message = _first_line(exc, secrets)
        who = f"role {role!r}" if role else "our role"
        if _login_refused(exc):
            raise DatabaseCredentialsError(
                f"{what}: the database refused the user or password of {who} ({message}):"
                f" check {variable}",
                variable=variable,
            ) from exc
        problem = _configuration_problem(exc)
        if problem is not None:
            target = _object_of(exc)
            about = f" (object {target})" if target and target not in message else ""
            raise DatabaseConfigurationError(
                f"{what}: the database refused {who}: {message}{about} [{problem}]"
            ) from exc
        if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
            raise DatabaseUnavailableError(f"{what}: database unavailable: {message}") from exc
        raise UndecatError(f"{what}: database error: {message}") from exc


def role_of(url: str) -> str | None:
    """The user name inside a connection URL or string (None when it names none)."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return None
    user = info.get("user")
    return str(user) if user else None


def password_of(url: str) -> tuple[str, ...]:
    """The password inside a connection URL or string, for scrubbing messages."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return ()
    password = info.get("password")
    return (str(password),) if password else ()


class Database:
    """A small pool of connections to one PostgreSQL database.

    The first connection is made eagerly, so that a wrong host or password is one clear
    :class:`~undecat.errors.DatabaseUnavailableError` at start-up, not a pool time-out later.
    A connection is checked before it is handed out only when it has been idle for more than
    ``check_after_idle`` seconds.
    """

    def __init__(
        self,
        url: Secret,
        *,
        name: str = "staging",
        max_size: int = 4,
        timeout: float | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        check_after_idle: float = _CHECK_AFTER_IDLE,
    ) -> None:
        self.name = name
        self._url = url
        self._secrets = password_of(url.reveal())
        self.role = role_of(url.reveal())
        self._variable = f"{name.upper()}_DB_URL"
        shown = redact_url(url.reveal())
        # libpq counts whole seconds and treats anything under 2 as 2.
        seconds = max(2, round(connect_timeout))
        # The longest a call waits for a connection, e.g. while the server is down.
        wait = connect_timeout if timeout is None else timeout
        with translate_errors(
            f"connecting to the {name} database at {shown}",
            secrets=self._secrets,
            role=self.role,
            variable=self._variable,
        ):
            probe = psycopg.connect(url.reveal(), connect_timeout=seconds, **_connect_kwargs())
            self.role = probe.info.user or self.role
            probe.close()
        self._idle = idle = _IdleCheck(check_after_idle)
        self._pool: psycopg_pool.ConnectionPool[psycopg.Connection[dict[str, Any]]] = (
            psycopg_pool.ConnectionPool(
                url.reveal(),
                min_size=1,
                max_size=max(1, max_size),
                kwargs={**_connect_kwargs(), "connect_timeout": seconds},
                open=False,
                name=f"undecat-{name}",
                timeout=wait,
                # A connection that PgBouncer or the server dropped is replaced, not reused.
                check=idle.check,
                configure=idle.returned,
            )
        )
        with translate_errors(
            f"opening the {name} pool at {shown}",
            secrets=self._secrets,
            role=self.role,
            variable=self._variable,
        ):
            self._pool.open(wait=True, timeout=max(wait, seconds))

    def __repr__(self) -> str:
        return f"Database(name={self.name!r}, url={redact_url(self._url.reveal())!r})"

    @contextmanager
    def _connection(self, what: str) -> Iterator[psycopg.Connection[dict[str, Any]]]:
        with (
            translate_errors(what, secrets=self._secrets, role=self.role, variable=self._variable),
            self._pool.connection() as conn,
        ):
            try:
                yield conn
            finally:
                self._idle.returned(conn)

    @contextmanager
    def transaction(self, what: str) -> Iterator[psycopg.Cursor[dict[str, Any]]]:
        """Yield a cursor inside one transaction (committed on success, rolled back on error)."""
        with self._connection(what) as conn, conn.transaction(), conn.cursor() as cur:
            yield cur

    @contextmanager
    def streaming(self, what: str) -> Iterator[psycopg.ServerCursor[dict[str, Any]]]:
        """Yield a server-side cursor inside one transaction: rows fetched a page at a time.

        For results too large to hold at once; the cursor lives only as long as the
        transaction, so it is safe behind PgBouncer in transaction mode.
        """
        with (
            self._connection(what) as conn,
            conn.transaction(),
            conn.cursor(name="undecat_stream") as cur,
        ):
            yield cur

    @contextmanager
    def statement(self, what: str) -> Iterator[psycopg.Cursor[dict[str, Any]]]:
        """Yield a cursor for exactly one statement, run on its own (autocommit).

        A single statement is atomic by itself, so it needs no ``BEGIN`` and ``COMMIT``: one
        round trip instead of three, which is what a per-product completion costs at the
        private network's latency. Use :meth:`transaction` for anything of two statements.
        """
        with self._connection(what) as conn, conn.cursor() as cur:
            yield cur

    def close(self) -> None:
        """Close every connection of the pool."""
        self._pool.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
