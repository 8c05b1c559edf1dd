"""The operator's queries: run history, one product across its stages, the pilot, retention."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from undecat.adapters.postgres.connection import Database
from undecat.ports import DelistedObjects

__all__ = ["PostgresOperatorQueries", "PostgresProductionLookup", "PostgresRetentionStore"]

#: The columns ``undecat show`` prints, in order (every stage's status, lease and reasons).
PRODUCT_COLUMNS: tuple[str, ...] = (
    "id",
    "source",
    "brand",
    "external_id",
    "name",
    "delisted_at",
    "image_status",
    "download_attempts",
    "download_next_at",
    "download_owner",
    "download_lease_until",
    "collage_attempts",
    "collage_next_at",
    "collage_owner",
    "collage_lease_until",
    "ximilar_status",
    "index_scope",
    "ximilar_target_count",
    "ximilar_attempts",
    "ximilar_next_at",
    "ximilar_owner",
    "ximilar_lease_until",
    "ximilar_record_ids",
    "ximilar_synced_at",
    "sync_status",
    "sync_attempts",
    "sync_next_at",
    "sync_owner",
    "sync_lease_until",
    "synced_at",
    "error_message",
    "original_image_urls",
    "image_urls",
    "collage_url",
    "updated_at",
)


class PostgresOperatorQueries:
    """Read-mostly queries behind ``undecat runs``, ``show`` and ``pilot``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def runs(
        self, *, job: str | None, since: datetime, failed_only: bool, limit: int = 500
    ) -> list[dict[str, Any]]:
        """Runs started since ``since``, newest first (failed: not ``success``)."""
        query = (
            "SELECT id, scraper_name, status, started_at, duration_seconds, records_fetched,"
            " records_new, records_updated, records_errors, error_message"
            " FROM scraper_logs WHERE started_at >= %(since)s"
            " AND (%(job)s::text IS NULL OR scraper_name = %(job)s"
            "      OR scraper_name LIKE %(qualified)s)"
            " AND (NOT %(failed)s OR status <> 'success')"
            " ORDER BY started_at DESC, id DESC LIMIT %(limit)s"
        )
        params = {
            "since": since,
            "job": job,
            "qualified": f"%.{job}" if job else None,
            "failed": failed_only,
            "limit": limit,
        }
        with self._db.transaction("listing runs") as cur:
            cur.execute(query, params)
            return list(cur.fetchall())

    def product(self, brand: str, external_id: str) -> dict[str, Any] | None:
        """One staging product with every stage's columns, or None."""
        columns = ", ".join(PRODUCT_COLUMNS)
        with self._db.transaction("reading a product") as cur:
            cur.execute(
                f"SELECT {columns} FROM raw_products WHERE brand = %s AND external_id = %s"
                " ORDER BY id LIMIT 1",
                (brand, external_id),
            )
            return cur.fetchone()

    def set_scope(self, brand: str, external_ids: Sequence[str], scope: str) -> int:
        """Set ``index_scope`` of the listed products of ``brand``; return how many changed."""
        with self._db.transaction("setting the Ximilar pilot") as cur:
            cur.execute(
                "UPDATE raw_products SET index_scope = %s, updated_at = now()"
                " WHERE brand = %s AND external_id = ANY(%s) AND index_scope IS DISTINCT FROM %s",
                (scope, brand, list(external_ids), scope),
            )
            return cur.rowcount

    def sample_pilot(self, brand: str, percent: float) -> int:
        """Put a stable ``percent`` share of the brand's products into the pilot."""
        with self._db.transaction("sampling the Ximilar pilot") as cur:
            # A hash of the external id, not random(): the same share is chosen every time,
            # so raising the percentage only adds products.
            cur.execute(
                "UPDATE raw_products SET index_scope = 'pilot', updated_at = now()"
                " WHERE brand = %s AND index_scope = 'off'"
                " AND (hashtext(external_id)::bigint & 2147483647) %% 10000 < %s",
                (brand, round(percent * 100)),
            )
            return cur.rowcount


class PostgresProductionLookup:
    """One product of the production catalog (``undecat show``), read-only."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def has_catalog(self) -> bool:
        """Whether ``catalog.products`` exists (production is migrated)."""
        with self._db.transaction("reading the production product") as cur:
            cur.execute("SELECT to_regclass('catalog.products') IS NOT NULL AS present")
            present = cur.fetchone()
        return bool(present and present["present"])

    def product(self, brand: str, external_id: str) -> dict[str, Any] | None:
        """The product's ``catalog.products`` row, or None."""
        with self._db.transaction("reading the production product") as cur:
            cur.execute(
                "SELECT * FROM catalog.products WHERE brand = %s AND external_id = %s",
                (brand, external_id),
            )
            return cur.fetchone()


class PostgresRetentionStore:
    """``scraper_logs`` retention and delisted products' object references."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def delete_run_logs_older_than(self, days: int) -> int:
        """Delete finished run logs older than ``days`` days (``prune_scraper_logs``)."""
        with self._db.transaction("deleting old run logs") as cur:
            cur.execute("SELECT prune_scraper_logs(%s) AS removed", (days,))
            row = cur.fetchone()
            return int(row["removed"]) if row else 0

    def delisted_before(self, cutoff: datetime, limit: int) -> list[DelistedObjects]:
        """Products delisted before ``cutoff`` that still reference photos or a collage."""
        with self._db.transaction("listing delisted products") as cur:
            cur.execute(
                "SELECT id, brand, external_id,"
                " COALESCE(jsonb_array_length(CASE WHEN jsonb_typeof(image_urls) = 'array'"
                "   THEN image_urls END), 0) AS photos,"
                " collage_url IS NOT NULL AS has_collage"
                " FROM raw_products WHERE delisted_at < %s"
                " AND (image_urls IS NOT NULL OR collage_url IS NOT NULL)"
                " AND (objects_purged_at IS NULL OR objects_purged_at < delisted_at)"
                " ORDER BY id LIMIT %s",
                (cutoff, limit),
            )
            return [
                DelistedObjects(
                    row_id=row["id"],
                    brand=row["brand"],
                    external_id=row["external_id"],
                    photos=row["photos"],
                    has_collage=row["has_collage"],
                )
                for row in cur.fetchall()
            ]

    def forget_objects(self, row_id: int, cutoff: datetime) -> bool:
        """Mark the row's objects deleted if it is still delisted since before ``cutoff``.

        Only this stage's columns are written: a product that comes back is sent back to
        ``pending`` (and downloaded again) by the database when collect clears its
        ``delisted_at`` (migration 0012).
        """
        with self._db.transaction("clearing a delisted product's objects") as cur:
            cur.execute(
                "UPDATE raw_products SET objects_purged_at = now(), collage_url = NULL,"
                " updated_at = now()"
                " WHERE id = %s AND delisted_at < %s",
                (row_id, cutoff),
            )
            return cur.rowcount == 1
