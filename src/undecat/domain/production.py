"""What production receives: the verification rule of ``sync_to_production``.

A product pending sync is one of three things:

* **ready** -- ``image_status='collage_ready'`` and its catalog fields pass: upserted into
  ``catalog.products`` and marked ``synced``;
* **not ready** -- photos or collage still on their way (``pending``/``uploaded``): left
  ``pending`` for a later run, neither skipped nor failed; production keeps the last verified
  version meanwhile;
* **never passes as it is** -- no name, no price or a price of zero or less, no currency, or
  ``image_status='error'``: ``skipped`` with the reason, until collect (or a new collage)
  changes it.

A delisted product is **delisted**: its production row (if any) becomes inactive, and it is
marked ``synced``.
"""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal
from typing import Any

import attrs

__all__ = ["CatalogEntry", "Verdict", "Verification", "verify"]


@attrs.frozen
class CatalogEntry:
    """A staging product as production receives it (``catalog.products`` columns)."""

    staging_id: int
    source: str
    brand: str
    external_id: str
    name: str | None
    description: str | None
    price: Decimal | None
    currency: str | None
    category: str | None
    colour: str | None
    sizes: Any  # the JSON list as collected
    composition: str | None
    image_urls: tuple[str, ...]
    collage_url: str | None
    ximilar_record_ids: tuple[str, ...]
    index_scope: str
    image_status: str
    delisted_at: datetime | None = None


class Verdict(enum.StrEnum):
    """What the sync does with one product."""

    READY = "ready"
    NOT_READY = "not_ready"
    SKIP = "skip"
    DELISTED = "delisted"


@attrs.frozen
class Verification:
    """A verdict and, for a skip, the reason stored in ``error_message``."""

    verdict: Verdict
    reason: str | None = None


def verify(entry: CatalogEntry) -> Verification:
    """Decide what ``sync_to_production`` does with ``entry`` (see the module docstring)."""
    if entry.delisted_at is not None:
        return Verification(Verdict.DELISTED)
    problems = []
    if not (entry.name or "").strip():
        problems.append("no name")
    if entry.price is None:
        problems.append("no price")
    elif entry.price <= 0:
        problems.append(f"price {entry.price} is not positive")
    if not (entry.currency or "").strip():
        problems.append("no currency")
    if entry.image_status == "error":
        problems.append("its photos or collage failed (image_status error)")
    if problems:
        return Verification(Verdict.SKIP, "sync: skipped: " + ", ".join(problems))
    if entry.image_status != "collage_ready" or not entry.collage_url:
        return Verification(Verdict.NOT_READY)
    return Verification(Verdict.READY)
