"""The index of the user media bucket: table ``user_media.objects`` (production migration 0002).

The bucket refuses LIST, so every object stored there has a row here, written *before* the
upload (``complete = false``) and marked complete after both files of the item are in.
Every statement is one short transaction (PgBouncer transaction mode, no session state).
Works over our :class:`~undecat.adapters.postgres.Database` or over a backend's own
``psycopg_pool.ConnectionPool``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import psycopg
import psycopg_pool
from psycopg.rows import dict_row

from undecat.adapters.postgres.connection import Database, translate_errors
from undecat.domain.keys import MediaItem, MediaKind
from undecat.domain.user_media import IndexedObject, KindUsage

__all__ = ["PostgresMediaIndex"]

_Cursor = psycopg.Cursor[dict[str, Any]]


class PostgresMediaIndex:
    """Rows of ``user_media.objects``; one short transaction per call."""

    def __init__(self, source: Database | psycopg_pool.ConnectionPool[Any]) -> None:
        self._source = source
        self._transaction: Callable[[str], AbstractContextManager[_Cursor]]
        if isinstance(source, Database):
            self._transaction = source.transaction
        else:
            self._transaction = self._pool_transaction

    def __repr__(self) -> str:
        return f"PostgresMediaIndex({self._source!r})"

    @contextmanager
    def _pool_transaction(self, what: str) -> Iterator[_Cursor]:
        assert isinstance(self._source, psycopg_pool.ConnectionPool)  # noqa: S101  # narrowing
        with (
            translate_errors(what),
            self._source.connection() as conn,
            conn.transaction(),
            conn.cursor(row_factory=dict_row) as cur,
        ):
            yield cur

    def begin(self, item: MediaItem, main_bytes: int, thumb_bytes: int) -> uuid.UUID:
        """Record (or re-record) the item's two objects as incomplete; return the attempt id."""
        attempt = uuid.uuid4()
        rows = [(item.main_key, main_bytes), (item.thumb_key, thumb_bytes)]
        with self._transaction("recording user media in the index") as cur:
            cur.executemany(
                """
                INSERT INTO user_media.objects
                    (key, user_id, kind, item_id, bytes, complete, attempt)
                VALUES (%s, %s, %s, %s, %s, false, %s)
                ON CONFLICT (key) DO UPDATE SET
                    bytes = EXCLUDED.bytes, complete = false, attempt = EXCLUDED.attempt,
                    updated_at = now()
                """,
                [
                    (key, item.user_id, item.kind.value, item.item_id, size, attempt)
                    for key, size in rows
                ],
            )
        return attempt

    def complete(self, item: MediaItem, attempt: uuid.UUID) -> int:
        """Mark the item's rows of ``attempt`` complete; return how many rows were (0..2)."""
        with self._transaction("completing user media in the index") as cur:
            cur.execute(
                """
                UPDATE user_media.objects SET complete = true, updated_at = now()
                WHERE key = ANY(%s) AND attempt = %s
                """,
                (list(item.keys), attempt),
            )
            return cur.rowcount

    def attempts(self, item: MediaItem) -> list[tuple[str, uuid.UUID]]:
        """The (key, attempt) of each indexed object of the item (none if it is not stored)."""
        with self._transaction("reading the user media index") as cur:
            cur.execute(
                "SELECT key, attempt FROM user_media.objects WHERE key = ANY(%s) ORDER BY key",
                (list(item.keys),),
            )
            return [(row["key"], row["attempt"]) for row in cur.fetchall()]

    def forget(self, entries: Sequence[tuple[str, uuid.UUID]]) -> list[str]:
        """Delete the rows whose (key, attempt) is listed; return the keys deleted.

        A row re-recorded by a newer store since it was read has another attempt and stays.
        """
        if not entries:
            return []
        with self._transaction("removing user media from the index") as cur:
            cur.execute(
                """
                DELETE FROM user_media.objects AS o
                USING unnest(%s::text[], %s::uuid[]) AS gone(key, attempt)
                WHERE o.key = gone.key AND o.attempt = gone.attempt
                RETURNING o.key
                """,
                ([key for key, _ in entries], [attempt for _, attempt in entries]),
            )
            return [row["key"] for row in cur.fetchall()]

    def next_batch(self, user_id: str, limit: int) -> list[IndexedObject]:
        """Up to ``limit`` indexed objects of one user (complete or not), in key order."""
        with self._transaction("reading the user media index") as cur:
            cur.execute(
                """
                SELECT key, kind, item_id, bytes, attempt, complete FROM user_media.objects
                WHERE user_id = %s ORDER BY key LIMIT %s
                """,
                (user_id, limit),
            )
            return [
                IndexedObject(
                    MediaItem(user_id, MediaKind(row["kind"]), row["item_id"]),
                    row["key"],
                    row["bytes"],
                    row["attempt"],
                    row["complete"],
                )
                for row in cur.fetchall()
            ]

    def totals(self, user_id: str) -> dict[MediaKind, KindUsage]:
        """Complete items and bytes of one user, per kind (kinds without items left out)."""
        with self._transaction("summing user media usage") as cur:
            cur.execute(
                """
                SELECT kind, count(DISTINCT item_id) AS items, sum(bytes)::bigint AS bytes
                FROM user_media.objects
                WHERE user_id = %s AND complete
                GROUP BY kind ORDER BY kind
                """,
                (user_id,),
            )
            return {
                MediaKind(row["kind"]): KindUsage(row["items"], row["bytes"])
                for row in cur.fetchall()
            }
