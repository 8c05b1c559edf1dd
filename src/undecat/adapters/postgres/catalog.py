"""The collect stage's side of ``raw_products``: batched, change-aware upsert and delisting.

One statement per batch: the drafts travel as parallel arrays through ``unnest`` into one
``INSERT ... ON CONFLICT DO UPDATE``. What changed is read from a snapshot of the rows taken
by the same statement, and the downstream reset (photos changed -> pending; metadata changed
-> sync pending) is done by the trigger of migration 0002, so this statement names only
catalog columns -- the only ones the ``apify`` role may write.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from undecat.adapters.postgres.connection import Database
from undecat.domain.models import ProductDraft, UpsertResult
from undecat.errors import UndecatError

__all__ = ["PostgresCatalogStore"]

_UPSERT = """
WITH incoming AS (
    SELECT * FROM unnest(
        %(source)s::text[], %(external_id)s::text[], %(brand)s::text[], %(name)s::text[],
        %(description)s::text[], %(price)s::numeric[], %(currency)s::text[],
        %(category)s::text[], %(colour)s::text[], %(sizes)s::text[], %(composition)s::text[],
        %(photos)s::text[], %(raw)s::text[]
    ) AS t(source, external_id, brand, name, description, price, currency, category,
           colour, sizes, composition, photos, raw)
),
before AS (
    SELECT p.source, p.external_id, p.original_image_urls, p.delisted_at,
           (p.name, p.description, p.price, p.currency, p.category, p.colour, p.sizes,
            p.composition) AS meta
    FROM raw_products p JOIN incoming i USING (source, external_id)
),
upserted AS (
    INSERT INTO raw_products AS p (
        source, external_id, brand, name, description, price, currency, category, colour,
        sizes, composition, original_image_urls, raw_data, scraped_at, image_status)
    SELECT source, external_id, brand, name, description, price, currency, category, colour,
           sizes::jsonb, composition, photos::jsonb, raw::jsonb, %(scraped_at)s, 'pending'
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
            with self._db.transaction(f"upserting {len(batch)} products") as cur:
                cur.execute(_UPSERT, {**_columns(batch), "scraped_at": scraped_at})
                row = cur.fetchone()
            if row is None:  # pragma: no cover  # an aggregate always returns one row
                raise UndecatError("upsert_products: no summary row")
            total += UpsertResult(
                new=row["new"],
                updated=row["updated"],
                unchanged=row["unchanged"],
                photos_changed=row["photos_changed"],
            )
        return total

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


def _columns(batch: Sequence[ProductDraft]) -> dict[str, list[object]]:
    return {
        "source": [d.source for d in batch],
        "external_id": [d.external_id for d in batch],
        "brand": [d.brand for d in batch],
        "name": [d.name for d in batch],
        "description": [d.description for d in batch],
        "price": [d.price for d in batch],
        "currency": [d.currency for d in batch],
        "category": [d.category for d in batch],
        "colour": [d.colour for d in batch],
        "sizes": [json.dumps(list(d.sizes), ensure_ascii=False) for d in batch],
        "composition": [d.composition for d in batch],
        "photos": [json.dumps(list(d.original_image_urls), ensure_ascii=False) for d in batch],
        "raw": [json.dumps(d.raw_data, ensure_ascii=False) for d in batch],
    }
