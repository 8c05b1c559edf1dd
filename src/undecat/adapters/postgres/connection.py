"""Connections and pools that work behind PgBouncer in transaction mode.

No session state survives a transaction there, so: ``prepare_threshold=None`` (no
server-side prepared statements), no ``SET`` outside a transaction, no session advisory
locks, no ``LISTEN``. psycopg's errors are translated here into the undecat tree, with
credentials removed from every message.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import psycopg_pool
from psycopg.rows import dict_row

from undecat.errors import (
    ConfigError,
    DatabaseCredentialsError,
    DatabaseUnavailableError,
    UndecatError,
)
from undecat.redact import Secret, redact_text, redact_url

__all__ = ["Database", "password_of", "translate_errors"]

_CONNECT_TIMEOUT = 10


def _connect_kwargs() -> dict[str, Any]:
    return {"prepare_threshold": None, "row_factory": dict_row, "autocommit": False}


_REFUSED = ("password authentication failed", "no password supplied", "SASL authentication")


@contextmanager
def translate_errors(
    what: str, *, secrets: tuple[str, ...] = (), variable: str = "STAGING_DB_URL"
) -> Iterator[None]:
    """Turn psycopg's exceptions raised inside the block into undecat errors.

    A refused password is :class:`~undecat.errors.CredentialsError` naming ``variable``; a
    missing table or column (a database not migrated yet) is a ``ConfigError`` saying to run
    ``undecat migrate``.
    """
    try:
        yield
    except UndecatError:
        raise
    except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn) as exc:
        message = redact_text(str(exc).strip().splitlines()[0], secrets)
        raise ConfigError(
            f"{what}: the database is not migrated ({message}): run `undecat migrate`"
        ) from exc
    except (psycopg.OperationalError, psycopg.InterfaceError, psycopg_pool.PoolTimeout) as exc:
        message = redact_text(str(exc).strip().splitlines()[0] if str(exc).strip() else "", secrets)
        if any(sign in str(exc) for sign in _REFUSED) or exc.sqlstate in ("28P01", "28000"):
            raise DatabaseCredentialsError(
                f"{what}: the database refused the user or password ({message}): check {variable}",
                variable=variable,
            ) from exc
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
    """

    def __init__(
        self, url: Secret, *, name: str = "staging", max_size: int = 4, timeout: float = 30.0
    ) -> None:
        self.name = name
        self._url = url
        self._secrets = password_of(url.reveal())
        self._variable = f"{name.upper()}_DB_URL"
        shown = redact_url(url.reveal())
        with translate_errors(
            f"connecting to the {name} database at {shown}",
            secrets=self._secrets,
            variable=self._variable,
        ):
            probe = psycopg.connect(
                url.reveal(), connect_timeout=_CONNECT_TIMEOUT, **_connect_kwargs()
            )
            probe.close()
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
                check=psycopg_pool.ConnectionPool.check_connection,
            )
        )
        with translate_errors(
            f"opening the {name} pool at {shown}", secrets=self._secrets, variable=self._variable
        ):
            self._pool.open(wait=True, timeout=timeout)

    def __repr__(self) -> str:
        return f"Database(name={self.name!r}, url={redact_url(self._url.reveal())!r})"

    @contextmanager
    def transaction(self, what: str) -> Iterator[psycopg.Cursor[dict[str, Any]]]:
        """Yield a cursor inside one transaction (committed on success, rolled back on error)."""
        with (
            translate_errors(what, secrets=self._secrets, variable=self._variable),
            self._pool.connection() as conn,
            conn.transaction(),
            conn.cursor() as cur,
        ):
            yield cur

    def close(self) -> None:
        """Close every connection of the pool."""
        self._pool.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
