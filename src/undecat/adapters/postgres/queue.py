"""Leased work queues over ``raw_products``: one mechanism, four stages.

A claim is one short transaction::

    UPDATE raw_products SET <stage>_owner = me, <stage>_lease_until = now() + lease,
                            <stage>_attempts = <stage>_attempts + 1
    WHERE id IN (SELECT id FROM raw_products WHERE <eligible> AND <lease free>
                 ORDER BY id LIMIT n FOR UPDATE SKIP LOCKED)

so concurrent claimers never get the same row, and no transaction stays open while the
work is done. Results are written only ``WHERE <stage>_owner = me``: a worker whose lease
lapsed and was taken over cannot overwrite the new owner's work. Rows whose attempts ran out
while their worker was gone (a crash loop) are moved to ``error`` before each claim.

Which states each stage moves a row between is not written here but asked of the domain's
status machines when the stage table is built, so the adapter can only write transitions the
domain allows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import attrs
from psycopg import sql
from psycopg.types.json import Jsonb

from undecat.adapters.postgres.connection import Database
from undecat.adapters.postgres.rows import PRODUCT_COLUMNS, product_from_row
from undecat.domain.models import Claim
from undecat.domain.stages import (
    CollageStored,
    Outcome,
    PhotosStored,
    ProductionDone,
    Stage,
    XimilarProgress,
)
from undecat.domain.status import (
    ImageEvent,
    ImageStatus,
    SyncEvent,
    SyncStatus,
    XimilarEvent,
    XimilarStatus,
    next_image_status,
    next_sync_status,
    next_ximilar_status,
)
from undecat.errors import UndecatError

__all__ = ["PostgresWorkQueue"]


@attrs.frozen
class _StageSpec:
    """How one stage maps onto ``raw_products``."""

    status_column: str
    eligible: sql.Composable  # which rows the stage works on
    error_value: str  # the status a failed product gets
    failed_value: str  # the status whose rows requeue_failed looks at
    requeue_value: str  # the status requeue_failed gives them back


def _eligible(text: str) -> sql.Composable:
    return sql.SQL(text)


def _specs() -> dict[Stage, _StageSpec]:
    i, x, s = ImageStatus, XimilarStatus, SyncStatus
    return {
        Stage.DOWNLOAD: _StageSpec(
            status_column="image_status",
            eligible=_eligible("image_status = 'pending' AND delisted_at IS NULL"),
            error_value=next_image_status(i.PENDING, ImageEvent.DOWNLOAD_FAILED),
            failed_value=i.ERROR,
            requeue_value=next_image_status(
                i.ERROR, ImageEvent.RETRY_DOWNLOAD, last_failure=ImageEvent.DOWNLOAD_FAILED
            ),
        ),
        Stage.COLLAGE: _StageSpec(
            status_column="image_status",
            eligible=_eligible("image_status = 'uploaded' AND delisted_at IS NULL"),
            error_value=next_image_status(i.UPLOADED, ImageEvent.COLLAGE_FAILED),
            failed_value=i.ERROR,
            requeue_value=next_image_status(
                i.ERROR, ImageEvent.RETRY_COLLAGE, last_failure=ImageEvent.COLLAGE_FAILED
            ),
        ),
        Stage.XIMILAR: _StageSpec(
            status_column="ximilar_status",
            # The document's selection, plus delisted products whose records must go.
            eligible=_eligible(
                "((ximilar_status IN ('pending', 'partial')"
                " AND image_status IN ('uploaded', 'collage_ready')"
                " AND index_scope = 'pilot' AND delisted_at IS NULL)"
                " OR (delisted_at IS NOT NULL AND ximilar_record_ids <> '[]'::jsonb))"
            ),
            error_value=next_ximilar_status(x.PENDING, XimilarEvent.FAILED),
            failed_value=x.ERROR,
            requeue_value=next_ximilar_status(x.ERROR, XimilarEvent.RETRY),
        ),
        Stage.SYNC: _StageSpec(
            status_column="sync_status",
            eligible=_eligible("sync_status = 'pending'"),
            error_value=next_sync_status(s.PENDING, SyncEvent.FAILED),
            failed_value=s.ERROR,
            requeue_value=next_sync_status(s.ERROR, SyncEvent.RETRY),
        ),
    }


_SPECS = _specs()
_RETURNING = sql.SQL(", ").join(sql.Identifier(c) for c in PRODUCT_COLUMNS)


class PostgresWorkQueue:
    """The :class:`~undecat.ports.WorkQueue` of one stage, on PostgreSQL."""

    def __init__(
        self,
        db: Database,
        stage: Stage,
        *,
        max_attempts: int = 3,
        retry_spacing: timedelta = timedelta(minutes=5),
    ) -> None:
        self.stage = stage
        self._db = db
        self._spec = _SPECS[stage]
        self._max_attempts = max_attempts
        self._spacing = retry_spacing
        p = stage.value
        self._owner = sql.Identifier(f"{p}_owner")
        self._lease = sql.Identifier(f"{p}_lease_until")
        self._attempts = sql.Identifier(f"{p}_attempts")
        self._next = sql.Identifier(f"{p}_next_at")
        self._status = sql.Identifier(self._spec.status_column)

    def __repr__(self) -> str:
        return f"PostgresWorkQueue(stage={self.stage.value!r}, db={self._db!r})"

    def _fmt(self, template: str, **extra: sql.Composable) -> sql.Composed:
        return sql.SQL(template).format(
            owner=self._owner,
            lease=self._lease,
            attempts=self._attempts,
            next=self._next,
            status=self._status,
            eligible=self._spec.eligible,
            returning=_RETURNING,
            **extra,
        )

    def claim(self, owner: str, limit: int, lease: timedelta) -> list[Claim]:
        """Lease up to ``limit`` eligible products to ``owner``."""
        if limit <= 0:
            return []
        give_up = self._fmt(
            "UPDATE raw_products SET {status} = %(error)s, {owner} = NULL, {lease} = NULL,"
            " error_message = %(message)s, updated_at = now()"
            " WHERE id IN (SELECT id FROM raw_products WHERE {eligible}"
            " AND {lease} < now() AND {attempts} >= %(max)s FOR UPDATE SKIP LOCKED)"
        )
        claim = self._fmt(
            "UPDATE raw_products SET {owner} = %(owner)s, {lease} = now() + %(lease)s,"
            " {attempts} = {attempts} + 1"
            " WHERE id IN (SELECT id FROM raw_products WHERE {eligible}"
            " AND ({lease} IS NULL OR {lease} < now())"
            " AND ({next} IS NULL OR {next} <= now())"
            " AND {attempts} < %(max)s"
            " ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED)"
            " RETURNING {returning}, {attempts} AS claim_attempt, {lease} AS claim_lease"
        )
        params: dict[str, Any] = {
            "owner": owner,
            "lease": lease,
            "limit": limit,
            "max": self._max_attempts,
            "error": self._spec.error_value,
            "message": (
                f"{self.stage.value}: gave up after {self._max_attempts} attempts"
                " (the worker holding it never finished)"
            ),
        }
        with self._db.transaction(f"claiming {self.stage.value} work") as cur:
            cur.execute(give_up, params)
            cur.execute(claim, params)
            rows = cur.fetchall()
        claims = [
            Claim(
                stage=self.stage.value,
                owner=owner,
                attempt=int(row["claim_attempt"]),
                lease_until=row["claim_lease"],
                product=product_from_row(row),
            )
            for row in rows
        ]
        claims.sort(key=lambda c: c.product.id)
        return claims

    def extend(self, claims: Sequence[Claim], lease: timedelta) -> int:
        """Push the leases still held by their owners out to now + ``lease``."""
        if not claims:
            return 0
        query = self._fmt(
            "UPDATE raw_products SET {lease} = now() + %(lease)s"
            " WHERE id = ANY(%(ids)s) AND {owner} = %(owner)s"
        )
        total = 0
        for owner, ids in _by_owner(claims).items():
            with self._db.transaction(f"extending {self.stage.value} leases") as cur:
                cur.execute(query, {"lease": lease, "ids": ids, "owner": owner})
                total += cur.rowcount
        return total

    def complete(self, claim: Claim, outcome: Outcome) -> bool:
        """Write the stage's result, only while ``claim.owner`` still holds the lease."""
        values = self._outcome(outcome)
        assignments = [
            sql.SQL("{} = {}").format(
                sql.Identifier(column),
                sql.SQL("now()") if value is _NOW else sql.Placeholder(column),
            )
            for column, value in values.items()
        ]
        query = self._fmt(
            "UPDATE raw_products SET {sets}, {owner} = NULL, {lease} = NULL, {attempts} = 0,"
            " {next} = NULL, updated_at = now()"
            " WHERE id = %(id)s AND {owner} = %(claim_owner)s",
            sets=sql.SQL(", ").join(assignments),
        )
        params = {k: v for k, v in values.items() if v is not _NOW}
        params.update(id=claim.product.id, claim_owner=claim.owner)
        what = f"completing {self.stage.value} of {claim.product.external_id}"
        with self._db.statement(what) as cur:
            cur.execute(query, params)
            return cur.rowcount == 1

    def _outcome(self, outcome: Outcome) -> dict[str, Any]:
        """Return the columns an outcome writes (``_NOW`` for the database's clock)."""
        match (self.stage, outcome):
            case (Stage.DOWNLOAD, PhotosStored(image_urls=urls)):
                status = next_image_status(ImageStatus.PENDING, ImageEvent.PHOTOS_STORED)
                return {
                    "image_urls": Jsonb(list(urls)),
                    "image_status": status.value,
                    "error_message": None,
                }
            case (Stage.COLLAGE, CollageStored(collage_url=url)):
                status = next_image_status(ImageStatus.UPLOADED, ImageEvent.COLLAGE_STORED)
                return {"collage_url": url, "image_status": status.value, "error_message": None}
            case (Stage.XIMILAR, XimilarProgress(synced_urls=urls, record_ids=ids, status=status)):
                if status not in _XIMILAR_RESULTS:
                    raise UndecatError(f"ximilar: {status.value!r} is not a completion status")
                return {
                    "ximilar_synced_urls": Jsonb(list(urls)),
                    "ximilar_record_ids": Jsonb(list(ids)),
                    "ximilar_status": status.value,
                    "ximilar_synced_at": _NOW,
                }
            case (Stage.SYNC, ProductionDone(status=status, reason=reason)):
                event = _SYNC_EVENTS.get(status)
                if event is None:
                    raise UndecatError(f"sync: {status.value!r} is not a completion status")
                return {
                    "sync_status": next_sync_status(SyncStatus.PENDING, event).value,
                    "synced_at": _NOW,
                    "error_message": reason,
                }
            case _:
                raise UndecatError(
                    f"{self.stage.value}: {type(outcome).__name__} is not an outcome of this stage"
                )

    def fail(self, claim: Claim, message: str) -> bool:
        """Mark the product ``error`` for this stage, keeping its attempt count."""
        query = self._fmt(
            "UPDATE raw_products SET {status} = %(error)s, error_message = %(message)s,"
            " {owner} = NULL, {lease} = NULL, updated_at = now()"
            " WHERE id = %(id)s AND {owner} = %(owner)s"
        )
        params = {
            "error": self._spec.error_value,
            "message": message[:2000],
            "id": claim.product.id,
            "owner": claim.owner,
        }
        with self._db.statement(
            f"failing {self.stage.value} of {claim.product.external_id}"
        ) as cur:
            cur.execute(query, params)
            return cur.rowcount == 1

    def postpone(self, claim: Claim, message: str, delay: timedelta) -> bool:
        """Try the product again after ``delay``; ``error`` once its attempts are used up."""
        if claim.attempt >= self._max_attempts:
            return self.fail(claim, f"{message} (gave up after {claim.attempt} attempts)")
        query = self._fmt(
            "UPDATE raw_products SET {next} = now() + %(delay)s, error_message = %(message)s,"
            " {owner} = NULL, {lease} = NULL"
            " WHERE id = %(id)s AND {owner} = %(owner)s"
        )
        params = {
            "delay": delay,
            "message": message[:2000],
            "id": claim.product.id,
            "owner": claim.owner,
        }
        with self._db.transaction(
            f"postponing {self.stage.value} of {claim.product.external_id}"
        ) as cur:
            cur.execute(query, params)
            return cur.rowcount == 1

    def release(self, claims: Sequence[Claim]) -> int:
        """Hand products back untouched; the attempt is not counted (it was an outage)."""
        if not claims:
            return 0
        query = self._fmt(
            "UPDATE raw_products SET {owner} = NULL, {lease} = NULL,"
            " {attempts} = GREATEST({attempts} - 1, 0)"
            " WHERE id = ANY(%(ids)s) AND {owner} = %(owner)s"
        )
        total = 0
        for owner, ids in _by_owner(claims).items():
            with self._db.transaction(f"releasing {self.stage.value} leases") as cur:
                cur.execute(query, {"ids": ids, "owner": owner})
                total += cur.rowcount
        return total

    def requeue_failed(self) -> int:
        """Send this stage's failed rows with attempts left back, spaced by the retry delay.

        A row failed in this stage when its status is the failed value and this stage's
        attempt count is non-zero (a success resets it to zero).
        """
        query = self._fmt(
            "UPDATE raw_products SET {status} = %(requeue)s, {next} = now() + %(spacing)s,"
            " updated_at = now()"
            " WHERE {status} = %(failed)s AND {attempts} > 0 AND {attempts} < %(max)s"
            " AND delisted_at IS NULL"
        )
        params = {
            "requeue": self._spec.requeue_value,
            "failed": self._spec.failed_value,
            "max": self._max_attempts,
            "spacing": self._spacing,
        }
        with self._db.transaction(f"requeueing failed {self.stage.value} work") as cur:
            cur.execute(query, params)
            return cur.rowcount


class _Now:
    """Marker for "the database's now()" among an outcome's column values."""


_NOW: Any = _Now()

_SYNC_EVENTS = {
    SyncStatus.SYNCED: SyncEvent.COPIED,
    SyncStatus.SKIPPED: SyncEvent.FAILED_VERIFICATION,
}
# What a Ximilar run may leave behind: the states reachable by its completion events.
_XIMILAR_RESULTS = frozenset(
    next_ximilar_status(state, event)
    for state in (XimilarStatus.PENDING, XimilarStatus.PARTIAL)
    for event in (XimilarEvent.SOME_SYNCED, XimilarEvent.ALL_SYNCED)
) | {XimilarStatus.PENDING}


def _by_owner(claims: Sequence[Claim]) -> dict[str, list[int]]:
    grouped: dict[str, list[int]] = {}
    for claim in claims:
        grouped.setdefault(claim.owner, []).append(claim.product.id)
    return grouped
