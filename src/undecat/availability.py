"""The availability read API for the app's services (recognition step 3.5, the post-filter).

One call, one query on the primary key of ``catalog.availability`` in the production
database, over a connection the caller owns (any psycopg 3 connection; the ``catalog_reader``
role is enough)::

    from undecat.availability import in_stock

    with psycopg.connect(PRODUCTION_DB_URL) as conn:
        stock = in_stock(conn, "zara", ["443322110", "443322111"], store_ids=[1236])
    # {"443322110": {1236: ["M", "S"]}}

Products not in stock anywhere (among the stores asked) are absent from the answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from psycopg.rows import tuple_row

from undecat.adapters.postgres.connection import translate_errors

__all__ = ["in_stock"]

# One row per product: the stores' size names as one JSON text, decoded by json.loads --
# several times cheaper than a row per store with its JSON decoded by the driver.
_QUERY = """
SELECT external_id,
       json_object_agg(store_id, jsonb_path_query_array(sizes_in_stock, '$[*].size'))::text
FROM catalog.availability
WHERE brand = %(brand)s AND external_id = ANY(%(ids)s)
  AND (%(stores)s::int[] IS NULL OR store_id = ANY(%(stores)s::int[]))
  AND sizes_in_stock <> '[]'::jsonb
GROUP BY external_id
"""


def in_stock(
    conn: psycopg.Connection[Any],
    brand: str,
    external_ids: Iterable[str],
    *,
    store_ids: Sequence[int] | None = None,
) -> dict[str, dict[int, list[str]]]:
    """Return ``{external_id: {store_id: [size, ...]}}`` of the products in stock.

    Sizes are the distinct size names in stock in that store (any colour), in the stored
    order (by colour, then size). ``store_ids`` limits the stores looked at (None: all).
    Database failures raise :class:`~undecat.errors.DatabaseUnavailableError` or
    :class:`~undecat.errors.UndecatError`.
    """
    ids = list(dict.fromkeys(str(i) for i in external_ids))
    if not ids or (store_ids is not None and not store_ids):
        return {}
    params = {
        "brand": brand,
        "ids": ids,
        "stores": None if store_ids is None else [int(s) for s in store_ids],
    }
    with (
        translate_errors("reading in-store availability"),
        conn.cursor(row_factory=tuple_row) as cur,
    ):
        cur.execute(_QUERY, params, prepare=False)
        rows = cur.fetchall()
    out: dict[str, dict[int, list[str]]] = {}
    for external_id, stores in rows:
        found: dict[int, list[str]] = {}
        for store_id, sizes in json.loads(stores).items():
            # One size in stock in several colours is listed once.
            names = list(dict.fromkeys(str(size) for size in sizes if size is not None))
            if names:
                found[int(store_id)] = names
        if found:
            out[str(external_id)] = dict(sorted(found.items()))
    return out
