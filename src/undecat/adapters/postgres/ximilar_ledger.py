"""The Ximilar record ids a worker is about to send, written down first (migration 0010)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from psycopg.types.json import Jsonb

from undecat.adapters.postgres.connection import Database

__all__ = ["PostgresXimilarLedger"]

_NOTE = """
    UPDATE raw_products AS p
       SET ximilar_pending_ids = p.ximilar_pending_ids || COALESCE(
               (SELECT jsonb_agg(x.id) FROM jsonb_array_elements(v.ids) AS x(id)
                 WHERE NOT p.ximilar_pending_ids @> jsonb_build_array(x.id)),
               '[]'::jsonb)
      FROM jsonb_each(%(pending)s) AS v(key, ids)
     WHERE p.id = v.key::bigint AND p.ximilar_owner = %(owner)s
    RETURNING p.id
"""

_CLEAR = """
    UPDATE raw_products SET ximilar_pending_ids = '[]'
     WHERE id = ANY(%(ids)s) AND ximilar_owner IS NULL AND ximilar_pending_ids <> '[]'
"""


class PostgresXimilarLedger:
    """The :class:`~undecat.ports.XimilarLedger` on ``raw_products.ximilar_pending_ids``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def __repr__(self) -> str:
        return f"PostgresXimilarLedger({self._db!r})"

    def note_pending(self, owner: str, pending: Mapping[int, Sequence[str]]) -> set[int]:
        """Add ``pending`` ids to each product ``owner`` still leases; return those products."""
        if not pending:
            return set()
        payload = Jsonb({str(pid): list(ids) for pid, ids in pending.items()})
        with self._db.transaction("noting Ximilar ids before sending them") as cur:
            cur.execute(_NOTE, {"pending": payload, "owner": owner})
            return {int(row["id"]) for row in cur.fetchall()}

    def clear_pending(self, product_ids: Sequence[int]) -> None:
        """Forget the pending ids of products whose outcome is written (lease given up)."""
        if not product_ids:
            return
        with self._db.transaction("clearing noted Ximilar ids") as cur:
            cur.execute(_CLEAR, {"ids": list(product_ids)})
