"""Putting products into a staging database quickly, in any state, for tests and benchmarks."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg

from undecat.domain.models import ProductDraft, source_for


def draft(n: int, brand: str = "zara", *, photos: int = 3, **changes: Any) -> ProductDraft:
    """A plausible product draft number ``n`` of ``brand``."""
    fields: dict[str, Any] = {
        "source": source_for(brand),
        "external_id": str(500_000_000 + n),
        "brand": brand,
        "name": f"PRODUCT {n}",
        "description": f"Description of product {n}",
        "price": Decimal(n % 900 + 99) + Decimal("0.90"),
        "currency": "AED",
        "category": "woman-outerwear",
        "colour": "Black",
        "sizes": ("XS", "S", "M", "L"),
        "composition": "100% cotton",
        "original_image_urls": tuple(
            f"https://static.zara.net/photos/{n}/{i}.jpg?w=1920" for i in range(1, photos + 1)
        ),
        "raw_data": {"id": 500_000_000 + n, "name": f"PRODUCT {n}"},
    }
    fields.update(changes)
    return ProductDraft(**fields)


def seed_rows(dsn: str, count: int, *, brand: str = "zara", start: int = 0, **columns: Any) -> None:
    """Insert ``count`` rows straight with SQL (fast: one statement), columns overridable.

    ``columns`` are literal SQL-typed values for extra columns, e.g.
    ``image_status="uploaded"`` or ``index_scope="pilot"``.
    """
    names = ", ".join(columns)
    placeholders = ", ".join(f"%({k})s" for k in columns)
    extra_names = f", {names}" if columns else ""
    extra_values = f", {placeholders}" if columns else ""
    query = f"""
        INSERT INTO raw_products (source, external_id, brand, name, price, original_image_urls,
                                  image_urls, scraped_at{extra_names})
        SELECT %(source)s::text, (500000000 + g)::text, %(brand)s::text, 'PRODUCT ' || g, 99.90,
               jsonb_build_array('https://static.zara.net/p/' || g || '/1.jpg',
                                 'https://static.zara.net/p/' || g || '/2.jpg'),
               jsonb_build_array('http://s3.local/unde-images/originals/' || %(brand)s::text || '/'
                                 || (500000000 + g) || '/1.jpg',
                                 'http://s3.local/unde-images/originals/' || %(brand)s::text || '/'
                                 || (500000000 + g) || '/2.jpg'),
               %(now)s{extra_values}
        FROM generate_series(%(start)s::int, %(end)s::int) AS g
    """
    params = {
        "source": source_for(brand),
        "brand": brand,
        "start": start,
        "end": start + count - 1,
        "now": datetime.now(UTC),
        **columns,
    }
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(query, params)


def column_values(dsn: str, column: str) -> dict[int, Any]:
    """Return ``{id: value}`` of one column of raw_products."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(f"SELECT id, {column} FROM raw_products ORDER BY id").fetchall()
    return {row[0]: row[1] for row in rows}
