"""Connections and pools that work behind PgBouncer in transaction mode.

No session state survives a transaction there, so: ``prepare_threshold=None`` (no
server-side prepared statements), no ``SET`` outside a transaction, no session advisory
locks, no ``LISTEN``. psycopg's errors are translated here into the undecat tree, with
credentials removed from every message.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import psycopg_pool
from psycopg.rows import dict_row

from undecat.errors import DatabaseUnavailableError, UndecatError
from undecat.redact import Secret, redact_text, redact_url

__all__ = ["Database", "password_of", "translate_errors"]

_CONNECT_TIMEOUT = 10

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


@contextmanager
def translate_errors(what: str, *, secrets: tuple[str, ...] = ()) -> Iterator[None]:
    """Turn psycopg's exceptions raised inside the block into undecat errors."""
    try:
        yield
    except UndecatError:
        raise
    except (psycopg.OperationalError, psycopg.InterfaceError, psycopg_pool.PoolTimeout) as exc:
        message = redact_text(str(exc).strip().splitlines()[0] if str(exc).strip() else "", secrets)
        raise DatabaseUnavailableError(f"{what}: database unavailable: {message}") from exc
    except psycopg.Error as exc:
        message = redact_text(str(exc).strip().splitlines()[0] if str(exc).strip() else "", secrets)
        raise UndecatError(f"{what}: database error: {message}") from exc


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
        timeout: float = 30.0,
        check_after_idle: float = _CHECK_AFTER_IDLE,
    ) -> None:
        self.name = name
        self._url = url
        self._secrets = password_of(url.reveal())
        shown = redact_url(url.reveal())
        with translate_errors(
            f"connecting to the {name} database at {shown}", secrets=self._secrets
        ):
            probe = psycopg.connect(
                url.reveal(), connect_timeout=_CONNECT_TIMEOUT, **_connect_kwargs()
            )
            probe.close()
        self._idle = idle = _IdleCheck(check_after_idle)
        self._pool: psycopg_pool.ConnectionPool[psycopg.Connection[dict[str, Any]]] = (
            psycopg_pool.ConnectionPool(
                url.reveal(),
                min_size=1,
                max_size=max(1, max_size),
                kwargs={**_connect_kwargs(), "connect_timeout": _CONNECT_TIMEOUT},
                open=False,
                name=f"undecat-{name}",
                timeout=timeout,  # longest wait for a connection (e.g. while the server is down)
                # A connection that PgBouncer or the server dropped is replaced, not reused.
                check=idle.check,
                configure=idle.returned,
            )
        )
        with translate_errors(f"opening the {name} pool at {shown}", secrets=self._secrets):
            self._pool.open(wait=True, timeout=timeout)

    def __repr__(self) -> str:
        return f"Database(name={self.name!r}, url={redact_url(self._url.reveal())!r})"

    @contextmanager
    def _connection(self, what: str) -> Iterator[psycopg.Connection[dict[str, Any]]]:
        with translate_errors(what, secrets=self._secrets), self._pool.connection() as conn:
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
