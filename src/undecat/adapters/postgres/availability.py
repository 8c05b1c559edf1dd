"""Staging's stores and availability, and what ``sync_to_production`` reads from staging.

Availability rows are written in batches with one statement each::

    INSERT INTO raw_availability (...) SELECT ... FROM unnest(...)
    ON CONFLICT (brand, store_id, product_id, to_date_immutable(fetched_at)) DO UPDATE ...

the conflict target being the document's expression index
``idx_raw_availability_unique_daily``: one row per (brand, store, product, UTC day), a later
answer of the same day replacing ``sizes_in_stock`` and ``fetched_at`` (an older answer
arriving late replaces nothing). The same transaction stamps ``availability_poll_state``,
which orders the next poll (least recently polled first) and gives the coverage.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, time
from typing import Any

from undecat.adapters.postgres.connection import Database
from undecat.domain.availability import sizes_json
from undecat.domain.models import AvailabilityRecord, PollTarget, SizeInStock, Store
from undecat.domain.production import CatalogEntry

__all__ = [
    "PostgresAvailabilityStore",
    "PostgresSyncSource",
    "record_from_row",
    "sizes_from_json",
    "store_from_row",
]

_STORE_COLUMNS = (
    "brand",
    "store_id",
    "name",
    "address",
    "city",
    "country",
    "mall_name",
    "latitude",
    "longitude",
)

_UPSERT_STORES = """
INSERT INTO raw_stores AS s (brand, store_id, name, address, city, country, mall_name,
                             latitude, longitude)
SELECT * FROM unnest(%(brand)s::text[], %(store_id)s::int[], %(name)s::text[],
                     %(address)s::text[], %(city)s::text[], %(country)s::text[],
                     %(mall_name)s::text[], %(latitude)s::numeric[], %(longitude)s::numeric[])
ON CONFLICT (brand, store_id) DO UPDATE SET
    name = EXCLUDED.name, address = EXCLUDED.address, city = EXCLUDED.city,
    country = EXCLUDED.country, mall_name = EXCLUDED.mall_name,
    latitude = EXCLUDED.latitude, longitude = EXCLUDED.longitude
WHERE (s.name, s.address, s.city, s.country, s.mall_name, s.latitude, s.longitude)
      IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.address, EXCLUDED.city, EXCLUDED.country,
                        EXCLUDED.mall_name, EXCLUDED.latitude, EXCLUDED.longitude)
"""

_WRITE = """
INSERT INTO raw_availability AS a (brand, store_id, product_id, sizes_in_stock, fetched_at)
SELECT b, s, p, j, f
FROM json_to_recordset(%(rows)s::json) AS t(b text, s int, p text, j jsonb, f timestamptz)
ON CONFLICT (brand, store_id, product_id, to_date_immutable(fetched_at)) DO UPDATE SET
    sizes_in_stock = EXCLUDED.sizes_in_stock, fetched_at = EXCLUDED.fetched_at
WHERE EXCLUDED.fetched_at >= a.fetched_at
"""

_STAMP = """
INSERT INTO availability_poll_state AS st (brand, product_id, polled_at)
SELECT b, p, f FROM json_to_recordset(%(polled)s::json) AS t(b text, p text, f timestamptz)
ON CONFLICT (brand, product_id) DO UPDATE SET polled_at = EXCLUDED.polled_at
WHERE EXCLUDED.polled_at > st.polled_at
"""

_TARGETS = """
SELECT p.external_id, p.colour,
       (SELECT coalesce(jsonb_agg(jsonb_build_array(c->>'id', c->>'productId')), '[]')
          FROM jsonb_array_elements(
                 CASE WHEN jsonb_typeof(p.raw_data->'colorsSizesImagesJSON') = 'array'
                      THEN p.raw_data->'colorsSizesImagesJSON' ELSE '[]'::jsonb END) AS c
         WHERE jsonb_typeof(c) = 'object' AND c->>'productId' IS NOT NULL) AS colours
FROM raw_products p
LEFT JOIN availability_poll_state st ON st.brand = p.brand AND st.product_id = p.external_id
WHERE p.brand = %(brand)s AND p.delisted_at IS NULL
ORDER BY (p.index_scope = 'pilot') DESC, st.polled_at ASC NULLS FIRST, p.id
"""


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def sizes_from_json(value: Any) -> tuple[SizeInStock, ...]:
    """The :class:`SizeInStock` values of a ``sizes_in_stock`` column."""
    out = []
    for item in value or ():
        if isinstance(item, dict) and "size" in item:
            stock = item.get("stock")
            out.append(
                SizeInStock(
                    colour=str(item.get("colour") or ""),
                    size=str(item["size"]),
                    stock=stock if isinstance(stock, int) else None,
                )
            )
        elif isinstance(item, str):  # a bare size name
            out.append(SizeInStock(colour="", size=item))
    return tuple(out)


def record_from_row(row: dict[str, Any]) -> AvailabilityRecord:
    """An :class:`AvailabilityRecord` from a row of brand, store_id, product_id, sizes, time."""
    return AvailabilityRecord(
        brand=row["brand"],
        store_id=int(row["store_id"]),
        product_id=row["product_id"],
        sizes_in_stock=sizes_from_json(row["sizes_in_stock"]),
        fetched_at=row["fetched_at"],
    )


def store_from_row(row: dict[str, Any]) -> Store:
    """A :class:`Store` from a stores row."""
    return Store(
        brand=row["brand"],
        store_id=int(row["store_id"]),
        name=row["name"],
        address=row["address"],
        city=row["city"] or "",
        country=row["country"] or "",
        mall_name=row["mall_name"],
        latitude=row["latitude"],
        longitude=row["longitude"],
    )


def store_columns(stores: Sequence[Store]) -> dict[str, list[Any]]:
    """Column arrays of ``stores`` for an ``unnest`` upsert (deduplicated by key)."""
    unique = {(s.brand, s.store_id): s for s in stores}
    rows = [unique[k] for k in sorted(unique)]
    return {
        "brand": [s.brand for s in rows],
        "store_id": [s.store_id for s in rows],
        "name": [s.name for s in rows],
        "address": [s.address for s in rows],
        "city": [s.city for s in rows],
        "country": [s.country for s in rows],
        "mall_name": [s.mall_name for s in rows],
        "latitude": [s.latitude for s in rows],
        "longitude": [s.longitude for s in rows],
    }


def latest_per_day(records: Sequence[AvailabilityRecord]) -> list[AvailabilityRecord]:
    """The latest record of each (brand, store, product, UTC day), in key order.

    Two records of one key in one statement would hit the same row twice, which PostgreSQL
    refuses: only the latest is kept.
    """
    latest: dict[tuple[str, int, str, date], AvailabilityRecord] = {}
    for r in records:
        key = (r.brand, r.store_id, r.product_id, r.day)
        held = latest.get(key)
        if held is None or r.fetched_at >= held.fetched_at:
            latest[key] = r
    return [latest[k] for k in sorted(latest)]


def availability_document(records: Sequence[AvailabilityRecord]) -> str:
    """The rows of ``records`` as one JSON document for ``json_to_recordset``.

    One text parameter instead of five arrays: psycopg adapts arrays element by element in
    Python, which cost more than the insert itself (docs/benchmarks.md). The document is
    assembled from cached pieces: the records of a batch share their brand, their
    products' few size lists and their fetch times.
    """
    sizes_text: dict[tuple[SizeInStock, ...], str] = {}
    strings: dict[str, str] = {}
    times: dict[datetime, str] = {}
    parts = []
    for r in latest_per_day(records):
        sizes = sizes_text.get(r.sizes_in_stock)
        if sizes is None:
            sizes = sizes_text[r.sizes_in_stock] = _dumps(sizes_json(r.sizes_in_stock))
        brand = strings.get(r.brand) or strings.setdefault(r.brand, _dumps(r.brand))
        product = strings.get(r.product_id) or strings.setdefault(
            r.product_id, _dumps(r.product_id)
        )
        when = times.get(r.fetched_at) or times.setdefault(
            r.fetched_at, _dumps(r.fetched_at.isoformat())
        )
        parts.append(f'{{"b":{brand},"s":{int(r.store_id)},"p":{product},"j":{sizes},"f":{when}}}')
    return "[" + ",".join(parts) + "]"


def _polled_document(records: Sequence[AvailabilityRecord]) -> str:
    newest: dict[tuple[str, str], datetime] = {}
    for r in records:
        key = (r.brand, r.product_id)
        if key not in newest or r.fetched_at > newest[key]:
            newest[key] = r.fetched_at
    return _dumps(
        [{"b": b, "p": p, "f": when.isoformat()} for (b, p), when in sorted(newest.items())]
    )


class PostgresAvailabilityStore:
    """The :class:`~undecat.ports.AvailabilityStore` on the staging database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def __repr__(self) -> str:
        return f"PostgresAvailabilityStore(db={self._db!r})"

    def stores(self, brand: str) -> list[Store]:
        """Return the stored stores of ``brand``, by store id."""
        with self._db.transaction(f"reading the stores of {brand}") as cur:
            cur.execute(
                f"SELECT {', '.join(_STORE_COLUMNS)} FROM raw_stores"  # constants
                " WHERE brand = %s ORDER BY store_id",
                (brand,),
            )
            return [store_from_row(row) for row in cur.fetchall()]

    def upsert_stores(self, stores: Sequence[Store]) -> int:
        """Insert or refresh stores on ``(brand, store_id)``; return how many rows changed."""
        if not stores:
            return 0
        with self._db.transaction("storing stores") as cur:
            cur.execute(_UPSERT_STORES, store_columns(stores))
            return cur.rowcount

    def poll_targets(self, brand: str) -> list[PollTarget]:
        """Active products of ``brand``: pilot first, then the least recently polled."""
        with self._db.transaction(f"choosing the {brand} products to poll") as cur:
            cur.execute(_TARGETS, {"brand": brand})
            rows = cur.fetchall()
        targets = []
        for row in rows:
            colours = tuple(
                (str(code or row["colour"] or ""), str(pid)) for code, pid in row["colours"]
            )
            if not colours:  # no colour product ids: the item's own id is the product id
                colours = ((str(row["colour"] or ""), row["external_id"]),)
            targets.append(PollTarget(brand=brand, external_id=row["external_id"], colours=colours))
        return targets

    def write(self, records: Sequence[AvailabilityRecord]) -> int:
        """Upsert one row per (brand, store, product, UTC day); return the rows written."""
        if not records:
            return 0
        document, polled = availability_document(records), _polled_document(records)
        with self._db.transaction(f"writing {len(records)} availability rows") as cur:
            cur.execute(_WRITE, {"rows": document})
            written = cur.rowcount
            cur.execute(_STAMP, {"polled": polled})
        return written

    def coverage(self, brand: str, day: date) -> float:
        """Share of the active products of ``brand`` polled on the UTC ``day``."""
        start = datetime.combine(day, time(), tzinfo=UTC)
        with self._db.transaction(f"measuring the {brand} coverage") as cur:
            cur.execute(
                "SELECT count(*) AS active,"
                " count(*) FILTER (WHERE st.polled_at >= %(start)s) AS polled"
                " FROM raw_products p LEFT JOIN availability_poll_state st"
                " ON st.brand = p.brand AND st.product_id = p.external_id"
                " WHERE p.brand = %(brand)s AND p.delisted_at IS NULL",
                {"brand": brand, "start": start},
            )
            row = cur.fetchone()
        if row is None or not row["active"]:
            return 0.0
        return round(int(row["polled"]) / int(row["active"]), 4)

    def delete_older_than(self, cutoff: datetime, limit: int) -> int:
        """Delete at most ``limit`` rows fetched before ``cutoff`` (rows locked elsewhere wait)."""
        with self._db.transaction("deleting old availability") as cur:
            cur.execute(
                "DELETE FROM raw_availability WHERE id IN (SELECT id FROM raw_availability"
                " WHERE fetched_at < %s ORDER BY fetched_at LIMIT %s FOR UPDATE SKIP LOCKED)",
                (cutoff, limit),
            )
            return cur.rowcount


_ENTRY_COLUMNS = (
    "id",
    "source",
    "brand",
    "external_id",
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
    "image_status",
    "delisted_at",
)


def entry_from_row(row: dict[str, Any]) -> CatalogEntry:
    """A :class:`CatalogEntry` from a ``raw_products`` row."""
    return CatalogEntry(
        staging_id=int(row["id"]),
        source=row["source"],
        brand=row["brand"],
        external_id=row["external_id"],
        name=row["name"],
        description=row["description"],
        price=row["price"],
        currency=row["currency"],
        category=row["category"],
        colour=row["colour"],
        sizes=row["sizes"] if row["sizes"] is not None else [],
        composition=row["composition"],
        image_urls=tuple(str(u) for u in row["image_urls"] or ()),
        collage_url=row["collage_url"],
        ximilar_record_ids=tuple(str(i) for i in row["ximilar_record_ids"] or ()),
        index_scope=row["index_scope"] or "off",
        image_status=row["image_status"] or "pending",
        delisted_at=row["delisted_at"],
    )


#: Availability rows read per page by :meth:`PostgresSyncSource.latest_availability`.
AVAILABILITY_PAGE = 5000


class PostgresSyncSource:
    """The :class:`~undecat.ports.SyncSource` on the staging database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def __repr__(self) -> str:
        return f"PostgresSyncSource(db={self._db!r})"

    def entries(self, ids: Sequence[int]) -> list[CatalogEntry]:
        """Return the staging rows ``ids`` (in id order)."""
        if not ids:
            return []
        with self._db.transaction(f"reading {len(ids)} products to sync") as cur:
            cur.execute(
                f"SELECT {', '.join(_ENTRY_COLUMNS)} FROM raw_products"  # constants
                " WHERE id = ANY(%s) ORDER BY id",
                (list(ids),),
            )
            return [entry_from_row(row) for row in cur.fetchall()]

    def all_stores(self) -> list[Store]:
        """Return every stored store."""
        with self._db.transaction("reading stores") as cur:
            cur.execute(
                f"SELECT {', '.join(_STORE_COLUMNS)} FROM raw_stores"  # constants
                " ORDER BY brand, store_id"
            )
            return [store_from_row(row) for row in cur.fetchall()]

    def latest_availability(
        self, since: datetime | None, *, page: int = AVAILABILITY_PAGE
    ) -> Iterator[list[AvailabilityRecord]]:
        """The latest row per (brand, store, product) fetched after ``since``, in pages.

        One query, read through a server-side cursor ``page`` rows at a time: a catalog of
        47,000 products in 20 stores is close to a million rows, which held at once would
        take gigabytes.
        """
        with self._db.streaming("reading the latest availability") as cur:
            cur.execute(
                "SELECT DISTINCT ON (brand, store_id, product_id)"
                " brand, store_id, product_id, sizes_in_stock, fetched_at"
                " FROM raw_availability"
                " WHERE %(since)s::timestamptz IS NULL OR fetched_at > %(since)s"
                " ORDER BY brand, store_id, product_id, fetched_at DESC",
                {"since": since},
            )
            while rows := cur.fetchmany(page):
                yield [record_from_row(row) for row in rows]
