"""The collect stage's side of ``raw_products``: batched, change-aware upsert and delisting.

One transaction per batch: the drafts are streamed with binary ``COPY`` into a temporary table
that lives only as long as the transaction (so it is safe behind PgBouncer in transaction
mode), then one ``INSERT ... SELECT ... ON CONFLICT DO UPDATE`` merges them. (COPY avoids
both a statement per row and psycopg's per-element escaping of big array parameters, which
cost three quarters of the time in the first version.) What changed is read from a
snapshot of the rows taken by the same statement, and the downstream reset (photos
changed -> pending; metadata changed -> sync pending) is done by the trigger of migration
0002, so this statement names only catalog columns -- the only ones the ``apify`` role may
write.

A batch none of whose products exists yet (a first load, a new brand) skips the merge: an
indexed look-up at the start of the transaction finds none of its keys, and the rows are
copied straight into ``raw_products``, where ``COPY`` inserts them in bulk instead of row by
row through the merge's executor (see docs/benchmarks.md, "Collect"). Should another writer
insert one of those products between the look-up and the copy, the unique key refuses the
copy, the transaction rolls back whole, and the batch is merged in a new one. Either way
the same columns are written, under the same triggers and grants. Round trips per batch:
BEGIN, look-up, COPY (two), COMMIT for new products; the temporary table and the merge add
two when some exist.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
import psycopg
from psycopg.adapt import Buffer, Dumper
from psycopg.pq import Format

from undecat.adapters.postgres.connection import Database
from undecat.domain.models import ProductDraft, UpsertResult
from undecat.errors import UndecatError

__all__ = ["PostgresCatalogStore"]

# The JSON columns arrive as UTF-8 JSON bytes (binary COPY, the item's one encoding) and
# are parsed once, by the merge.
_INCOMING = """
CREATE TEMP TABLE incoming_products (
    source text, external_id text, brand text, name text, description text, price numeric,
    currency text, category text, colour text, sizes bytea, composition text, photos bytea,
    raw bytea
) ON COMMIT DROP
"""

_TYPES = (
    "text", "text", "text", "text", "text", "numeric",
    "text", "text", "text", "bytea", "text", "bytea",
    "bytea",
)  # fmt: skip

_COPY = "COPY incoming_products FROM STDIN (FORMAT BINARY)"

# Whether any key of a batch exists already (one probe of the unique index per key). The
# keys travel as one JSON text of [source, external_id] pairs: psycopg adapts a list
# parameter element by element in Python, ~1.5 ms per 1,000-element array, where orjson
# encodes the pairs in microseconds -- time the writer would otherwise take from the mapper.
_EXISTING = """
SELECT 1 FROM jsonb_array_elements(%(keys)s::jsonb) AS k(pair)
JOIN raw_products r ON r.source = k.pair->>0 AND r.external_id = k.pair->>1
LIMIT 1
"""

# A batch of new products, straight into the table: the merge's columns and values.
_COPY_NEW = """
COPY raw_products (
    source, external_id, brand, name, description, price, currency, category, colour,
    sizes, composition, original_image_urls, raw_data, scraped_at, image_status)
FROM STDIN (FORMAT BINARY)
"""

_NEW_TYPES = (
    "text", "text", "text", "text", "text", "numeric",
    "text", "text", "text", "jsonb", "text", "jsonb",
    "jsonb", "timestamptz", "text",
)  # fmt: skip

_UPSERT = """
WITH incoming AS (
    SELECT source, external_id, brand, name, description, price, currency, category, colour,
           convert_from(sizes, 'UTF8')::jsonb AS sizes, composition,
           convert_from(photos, 'UTF8')::jsonb AS photos,
           convert_from(raw, 'UTF8')::jsonb AS raw
    FROM incoming_products
),
before AS (
    -- One index probe per incoming row. OFFSET 0 keeps the planner from flattening the
    -- lateral into a hash join over the whole table (a full scan per batch).
    SELECT i.source, i.external_id, p.original_image_urls, p.delisted_at, p.meta
    FROM incoming i CROSS JOIN LATERAL (
        SELECT r.original_image_urls, r.delisted_at,
               (r.name, r.description, r.price, r.currency, r.category, r.colour, r.sizes,
                r.composition) AS meta
        FROM raw_products r
        WHERE r.source = i.source AND r.external_id = i.external_id
        OFFSET 0
    ) p
),
upserted AS (
    INSERT INTO raw_products AS p (
        source, external_id, brand, name, description, price, currency, category, colour,
        sizes, composition, original_image_urls, raw_data, scraped_at, image_status)
    SELECT source, external_id, brand, name, description, price, currency, category, colour,
           sizes, composition, photos, raw, %(scraped_at)s, 'pending'
    FROM incoming
    ON CONFLICT (source, external_id) DO UPDATE SET
        name = EXCLUDED.name,
        description = EXCLUDED.description,
        price = EXCLUDED.price,
        currency = EXCLUDED.currency,
        category = EXCLUDED.category,
        colour = EXCLUDED.colour,
        sizes = EXCLUDED.sizes,
        composition = EXCLUDED.composition,
        original_image_urls = EXCLUDED.original_image_urls,
        raw_data = EXCLUDED.raw_data,
        scraped_at = EXCLUDED.scraped_at,
        delisted_at = NULL
    RETURNING p.source, p.external_id, (p.xmax = 0) AS inserted, p.original_image_urls,
              (p.name, p.description, p.price, p.currency, p.category, p.colour, p.sizes,
               p.composition) AS meta
)
SELECT
    count(*) FILTER (WHERE u.inserted) AS new,
    count(*) FILTER (WHERE NOT u.inserted
                     AND u.original_image_urls IS DISTINCT FROM b.original_image_urls)
        AS photos_changed,
    count(*) FILTER (WHERE NOT u.inserted AND (
        u.original_image_urls IS DISTINCT FROM b.original_image_urls
        OR u.meta IS DISTINCT FROM b.meta OR b.delisted_at IS NOT NULL)) AS updated,
    count(*) FILTER (WHERE NOT u.inserted AND NOT (
        u.original_image_urls IS DISTINCT FROM b.original_image_urls
        OR u.meta IS DISTINCT FROM b.meta OR b.delisted_at IS NOT NULL)) AS unchanged
FROM upserted u LEFT JOIN before b USING (source, external_id)
"""


class PostgresCatalogStore:
    """The :class:`~undecat.ports.CatalogStore` on PostgreSQL."""

    def __init__(self, db: Database, *, batch_size: int = 1000) -> None:
        self._db = db
        self._batch_size = batch_size

    def __repr__(self) -> str:
        return f"PostgresCatalogStore(db={self._db!r})"

    def upsert_products(self, drafts: Sequence[ProductDraft], scraped_at: datetime) -> UpsertResult:
        """Upsert ``drafts`` in batches of one statement each; see the module docstring."""
        keys = [(d.source, d.external_id) for d in drafts]
        if len(set(keys)) != len(keys):
            raise UndecatError(
                "upsert_products: the same (source, external_id) appears twice in one call"
            )
        total = UpsertResult()
        for start in range(0, len(drafts), self._batch_size):
            batch = drafts[start : start + self._batch_size]
            try:
                total += self._upsert_batch(batch, scraped_at)
            except _Raced:
                with self._db.transaction(f"upserting {len(batch)} products") as cur:
                    total += _merge(cur, batch, scraped_at)
        return total

    def _upsert_batch(self, batch: Sequence[ProductDraft], scraped_at: datetime) -> UpsertResult:
        """One batch in one transaction: copied straight in when all new, merged otherwise.

        Raises :class:`_Raced` (nothing written) when a product of an all-new batch appeared
        between the look-up and the copy (the unique violation rolls the transaction back).
        """
        keys = orjson.dumps([(d.source, d.external_id) for d in batch]).decode()
        with self._db.transaction(f"upserting {len(batch)} products") as cur:
            cur.execute(_EXISTING, {"keys": keys})
            if cur.fetchone() is not None:
                return _merge(cur, batch, scraped_at)
            # For COPY after set_types() only (looked up by oid), and on this cursor only.
            cur.adapters.register_dumper(None, _JsonTextDumper)
            try:
                with cur.copy(_COPY_NEW) as copy:
                    copy.set_types(_NEW_TYPES)
                    for d in batch:
                        copy.write_row(_new_row(d, scraped_at))
            except psycopg.errors.UniqueViolation:
                raise _Raced from None  # another writer was quicker: merge instead
        return UpsertResult(new=len(batch))

    def count_active(self, source: str) -> int:
        """Return how many products of ``source`` are not delisted."""
        with self._db.transaction(f"counting active products of {source}") as cur:
            cur.execute(
                "SELECT count(*) AS n FROM raw_products WHERE source = %s AND delisted_at IS NULL",
                (source,),
            )
            row = cur.fetchone()
        return int(row["n"]) if row else 0

    def delist_missing(self, source: str, seen_since: datetime) -> int:
        """Mark delisted the active products of ``source`` not scraped since ``seen_since``."""
        with self._db.transaction(f"delisting missing products of {source}") as cur:
            cur.execute(
                "UPDATE raw_products SET delisted_at = now()"
                " WHERE source = %s AND delisted_at IS NULL AND scraped_at < %s",
                (source, seen_since),
            )
            return cur.rowcount


def _copy_row(d: ProductDraft) -> tuple[object, ...]:
    """One draft as a row of ``incoming_products`` (JSON columns as UTF-8 JSON bytes)."""
    return (
        d.source,
        d.external_id,
        d.brand,
        d.name,
        d.description,
        d.price,
        d.currency,
        d.category,
        d.colour,
        orjson.dumps(d.sizes),
        d.composition,
        orjson.dumps(d.original_image_urls),
        d.raw_json if d.raw_json is not None else _json(d.raw_data),
    )


def _merge(
    cur: psycopg.Cursor[dict[str, Any]], batch: Sequence[ProductDraft], scraped_at: datetime
) -> UpsertResult:
    """Merge a batch through the staging table (new, changed and unchanged products)."""
    cur.execute(_INCOMING)
    with cur.copy(_COPY) as copy:
        copy.set_types(_TYPES)
        for d in batch:
            copy.write_row(_copy_row(d))
    cur.execute(_UPSERT, {"scraped_at": scraped_at})
    row = cur.fetchone()
    if row is None:  # pragma: no cover  # an aggregate always returns one row
        raise UndecatError("upsert_products: no summary row")
    return UpsertResult(
        new=row["new"],
        updated=row["updated"],
        unchanged=row["unchanged"],
        photos_changed=row["photos_changed"],
    )


def _new_row(d: ProductDraft, scraped_at: datetime) -> tuple[object, ...]:
    """One draft as a row of ``raw_products``: :func:`_copy_row`'s, stamped and pending.

    Its JSON bytes go to jsonb columns here (see :class:`_JsonTextDumper`).
    """
    return (*_copy_row(d), scraped_at, "pending")


class _JsonTextDumper(Dumper):
    """jsonb in binary ``COPY`` from JSON bytes as they are: format version 1, then the text.

    psycopg's own jsonb dumper takes a :class:`~psycopg.types.json.Jsonb` wrapper per value
    and calls its ``dumps``; the rows here already hold the encoded JSON, so this is the
    one step left (a third of the row's cost in the writer thread). Registered without a
    Python type, it serves only where psycopg looks dumpers up by type oid -- ``COPY``
    after ``set_types`` -- on the cursor it is registered on; the server still parses and
    checks the text.
    """

    format = Format.BINARY
    oid = psycopg.adapters.types["jsonb"].oid

    def dump(self, obj: Any) -> Buffer:
        return b"\x01" + bytes(obj)


class _Raced(Exception):  # noqa: N818  # control flow, not an error
    """A product of an all-new batch was inserted by another writer meanwhile."""


def _json(value: object) -> bytes:
    """Compact UTF-8 JSON; the standard library where orjson refuses (integers over 64 bits)."""
    try:
        return orjson.dumps(value)
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
