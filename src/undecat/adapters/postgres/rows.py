"""The database-row boundary: one cattrs converter from ``raw_products`` rows to models."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import cattrs

from undecat.domain.models import Product, RunLog

__all__ = ["PRODUCT_COLUMNS", "product_from_row", "run_log_from_row"]

#: The columns every stage reads (the same list in every SELECT / RETURNING).
PRODUCT_COLUMNS = (
    "id",
    "source",
    "external_id",
    "brand",
    "name",
    "category",
    "price",
    "original_image_urls",
    "image_urls",
    "collage_url",
    "image_status",
    "ximilar_status",
    "sync_status",
    "index_scope",
    "ximilar_synced_urls",
    "ximilar_target_count",
    "error_message",
    "delisted_at",
    "ximilar_record_ids",
)

_converter = cattrs.Converter()
# JSONB lists arrive as Python lists, or as NULL where the schema allows it.
_converter.register_structure_hook_func(
    lambda t: t == tuple[str, ...],
    lambda value, _: () if value is None else tuple(str(v) for v in value),
)
# psycopg already hands back these types; take them as they are.
for _native in (Decimal, datetime):
    _converter.register_structure_hook(_native, lambda value, _: value)
# The schema gives defaults but not NOT NULL: a NULL status or scope reads as its default.
_DEFAULTS = {
    "image_status": "pending",
    "ximilar_status": "pending",
    "sync_status": "pending",
    "index_scope": "off",
    "ximilar_target_count": 2,
}


def product_from_row(row: dict[str, Any]) -> Product:
    """Build a :class:`Product` from a row holding :data:`PRODUCT_COLUMNS`."""
    data = {name: row[name] for name in PRODUCT_COLUMNS}
    for name, default in _DEFAULTS.items():
        if data[name] is None:
            data[name] = default
    return _converter.structure(data, Product)


def run_log_from_row(row: dict[str, Any]) -> RunLog:
    """Build a :class:`RunLog` from a ``scraper_logs`` row."""
    fields = {a.name for a in RunLog.__attrs_attrs__}
    return _converter.structure({k: v for k, v in row.items() if k in fields}, RunLog)
