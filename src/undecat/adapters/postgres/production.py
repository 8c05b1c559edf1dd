"""The production catalog (schema ``catalog`` of ``unde_main``), written by the sync.

Every write is an upsert guarded by ``IS DISTINCT FROM``: a row whose values production
already holds is not touched (no new tuple, no changed ``updated_at``), so a sync run right
after another writes nothing. Each call is one bounded transaction; the job writes
production before it marks anything in staging.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from undecat.adapters.postgres.availability import availability_document, store_columns
from undecat.adapters.postgres.connection import Database
from undecat.domain.models import AvailabilityRecord, Store
from undecat.domain.production import CatalogEntry

__all__ = ["PostgresProductionCatalog"]

_FIELDS = (
    "source",
    "name",
    "description",
    "price",
    "currency",
    "category",
    "colour",
    "sizes",
    "composition",
    "image_urls",
    "collage_url",
    "ximilar_record_ids",
    "index_scope",
    "staging_id",
)


def _distinct(prefix: str) -> str:
    return ", ".join(f"{prefix}.{f}" for f in (*_FIELDS, "is_active"))


_UPSERT_PRODUCTS = f"""
INSERT INTO catalog.products AS p (brand, external_id, {", ".join(_FIELDS)}, is_active)
SELECT brand, external_id, source, name, description, price, currency, category, colour,
       sizes::jsonb, composition, image_urls::jsonb, collage_url, ximilar_record_ids::jsonb,
       index_scope, staging_id, true
FROM unnest(%(brand)s::text[], %(external_id)s::text[], %(source)s::text[], %(name)s::text[],
            %(description)s::text[], %(price)s::numeric[], %(currency)s::text[],
            %(category)s::text[], %(colour)s::text[], %(sizes)s::text[],
            %(composition)s::text[], %(image_urls)s::text[], %(collage_url)s::text[],
            %(ximilar_record_ids)s::text[], %(index_scope)s::text[], %(staging_id)s::bigint[])
     AS t(brand, external_id, source, name, description, price, currency, category, colour,
          sizes, composition, image_urls, collage_url, ximilar_record_ids, index_scope,
          staging_id)
ON CONFLICT (brand, external_id) DO UPDATE SET
    {", ".join(f"{f} = EXCLUDED.{f}" for f in _FIELDS)},
    is_active = true, synced_at = now(), updated_at = now()
WHERE ({_distinct("p")}) IS DISTINCT FROM ({_distinct("EXCLUDED")})
"""  # column names are constants

_DEACTIVATE = """
UPDATE catalog.products p SET is_active = false, synced_at = now(), updated_at = now()
FROM unnest(%(brand)s::text[], %(external_id)s::text[]) AS t(brand, external_id)
WHERE p.brand = t.brand AND p.external_id = t.external_id AND p.is_active
"""

_UPSERT_STORES = """
INSERT INTO catalog.stores AS s (brand, store_id, name, address, city, country, mall_name,
                                 latitude, longitude)
SELECT * FROM unnest(%(brand)s::text[], %(store_id)s::int[], %(name)s::text[],
                     %(address)s::text[], %(city)s::text[], %(country)s::text[],
                     %(mall_name)s::text[], %(latitude)s::numeric[], %(longitude)s::numeric[])
ON CONFLICT (brand, store_id) DO UPDATE SET
    name = EXCLUDED.name, address = EXCLUDED.address, city = EXCLUDED.city,
    country = EXCLUDED.country, mall_name = EXCLUDED.mall_name,
    latitude = EXCLUDED.latitude, longitude = EXCLUDED.longitude, updated_at = now()
WHERE (s.name, s.address, s.city, s.country, s.mall_name, s.latitude, s.longitude)
      IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.address, EXCLUDED.city, EXCLUDED.country,
                        EXCLUDED.mall_name, EXCLUDED.latitude, EXCLUDED.longitude)
"""

_UPSERT_AVAILABILITY = """
INSERT INTO catalog.availability AS a (brand, external_id, store_id, sizes_in_stock, fetched_at)
SELECT b, p, s, j, f
FROM json_to_recordset(%(rows)s::json) AS t(b text, s int, p text, j jsonb, f timestamptz)
ON CONFLICT (brand, external_id, store_id) DO UPDATE SET
    sizes_in_stock = EXCLUDED.sizes_in_stock, fetched_at = EXCLUDED.fetched_at,
    updated_at = now()
WHERE EXCLUDED.fetched_at > a.fetched_at
"""


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _product_columns(entries: Sequence[CatalogEntry]) -> dict[str, list[Any]]:
    unique = {(e.brand, e.external_id): e for e in entries}
    rows = [unique[k] for k in sorted(unique)]
    return {
        "brand": [e.brand for e in rows],
        "external_id": [e.external_id for e in rows],
        "source": [e.source for e in rows],
        "name": [e.name for e in rows],
        "description": [e.description for e in rows],
        "price": [e.price for e in rows],
        "currency": [e.currency for e in rows],
        "category": [e.category for e in rows],
        "colour": [e.colour for e in rows],
        "sizes": [_dumps(e.sizes if e.sizes is not None else []) for e in rows],
        "composition": [e.composition for e in rows],
        "image_urls": [_dumps(list(e.image_urls)) for e in rows],
        "collage_url": [e.collage_url for e in rows],
        "ximilar_record_ids": [_dumps(list(e.ximilar_record_ids)) for e in rows],
        "index_scope": [e.index_scope for e in rows],
        "staging_id": [e.staging_id for e in rows],
    }


class PostgresProductionCatalog:
    """The :class:`~undecat.ports.ProductionCatalog` on the production database."""

    def __init__(self, db: Database, *, chunk: int = 5000) -> None:
        self._db = db
        self._chunk = chunk

    def __repr__(self) -> str:
        return f"PostgresProductionCatalog(db={self._db!r})"

    def upsert_products(self, entries: Sequence[CatalogEntry]) -> int:
        """Write verified products as active; return how many rows changed."""
        return self._chunked(
            entries, "writing products to production", _UPSERT_PRODUCTS, _product_columns
        )

    def deactivate(self, entries: Sequence[CatalogEntry]) -> int:
        """Mark delisted products inactive (their rows are kept)."""
        if not entries:
            return 0
        with self._db.transaction("deactivating delisted products in production") as cur:
            cur.execute(
                _DEACTIVATE,
                {
                    "brand": [e.brand for e in entries],
                    "external_id": [e.external_id for e in entries],
                },
            )
            return cur.rowcount

    def upsert_stores(self, stores: Sequence[Store]) -> int:
        """Copy stores; return how many rows changed."""
        return self._chunked(stores, "writing stores to production", _UPSERT_STORES, store_columns)

    def upsert_availability(self, records: Sequence[AvailabilityRecord]) -> int:
        """Copy the latest answer per (brand, store, product); return how many rows changed."""
        return self._chunked(
            records,
            "writing availability to production",
            _UPSERT_AVAILABILITY,
            lambda part: {"rows": availability_document(part)},
        )

    def availability_watermark(self) -> datetime | None:
        """The newest ``fetched_at`` production holds."""
        with self._db.transaction("reading the production availability watermark") as cur:
            cur.execute("SELECT max(fetched_at) AS newest FROM catalog.availability")
            row = cur.fetchone()
        return None if row is None else row["newest"]

    def _chunked(self, items: Sequence[Any], what: str, query: str, columns: Any) -> int:
        changed = 0
        for start in range(0, len(items), self._chunk):
            part = items[start : start + self._chunk]
            with self._db.transaction(what) as cur:
                cur.execute(query, columns(part))
                changed += cur.rowcount
        return changed
