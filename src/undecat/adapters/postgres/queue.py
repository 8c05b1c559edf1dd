"""Leased work queues over ``raw_products``: one mechanism, four stages.

A claim is one short transaction::

    UPDATE raw_products SET <stage>_owner = me, <stage>_lease_until = now() + lease,
                            <stage>_attempts = <stage>_attempts + 1
    WHERE id IN (SELECT id FROM raw_products WHERE <eligible> AND <lease free>
                 ORDER BY id LIMIT n FOR UPDATE SKIP LOCKED)

so concurrent claimers never get the same row, and no transaction stays open while the
work is done. Every claim bumps the stage's claim counter (``<stage>_claim``, migration 0007)
and hands its value back as the claim's token; results are written only
``WHERE <stage>_owner = me AND <stage>_claim = token``: a worker whose lease lapsed and was
taken over (even by a worker of the same name) cannot overwrite the new claim's work.

Results are written in batches: ``complete_many`` and ``fail_many`` are one
``UPDATE raw_products ... FROM unnest(ids, tokens, ...) WITH ORDINALITY`` per call (one per
set of columns written: a partial Ximilar row or a skipped sync writes different ones), fenced
item by item as above, and answer item by item whether it was written. ``complete`` and
``fail`` are the same statement for one item: one round trip each.

A stage's failure is its own: ``<stage>_error`` holds the reason and takes the row out of
that stage's queue, and nothing else; ``error_message`` shows the latest reason of any stage.
Rows whose attempts ran out (a crash loop, or the last retry failing) end failed with their
reason -- never pending and unclaimable -- and only ``requeue`` (``undecat requeue``) brings
them back. A partial Ximilar row (records the collection did not confirm) keeps its attempt
count and waits ``PARTIAL_RETRY_SPACING`` before it is claimed again, so it is not sent again
and again while other rows starve; new photos or a raised target make it claimable at once
(triggers of 0007), and one that never completes ends failed after its attempts.

Which states each stage moves a row between is not written here but asked of the domain's
status machines when the stage table is built, so the adapter can only write transitions the
domain allows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import attrs
import orjson
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
    QueueCounts,
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
from undecat.redact import redact_text

__all__ = ["PARTIAL_RETRY_SPACING", "PostgresWorkQueue"]


@attrs.frozen
class _StageSpec:
    """How one stage maps onto ``raw_products``."""

    status_column: str
    eligible: sql.Composable  # which rows the stage works on
    error_value: str | None  # the status a failed product gets (None: status kept)
    failed_value: str | None  # the status requeueing moves back (None: status kept)
    requeue_value: str | None  # the status requeueing gives them back
    requeue_delisted: bool = False  # whether delisted rows are retried too


def _eligible(text: str) -> sql.Composable:
    return sql.SQL(text)


def _specs() -> dict[Stage, _StageSpec]:
    i, x, s = ImageStatus, XimilarStatus, SyncStatus
    collage_failed = next_image_status(i.UPLOADED, ImageEvent.COLLAGE_FAILED)
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
            # The photos stay 'uploaded' (collage_error says the collage failed).
            error_value=None if collage_failed is i.UPLOADED else collage_failed,
            failed_value=None,
            requeue_value=None,
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
            requeue_delisted=True,  # a delisted row whose delete failed is retried
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
#: A partial Ximilar row is not claimed again sooner than this (nor within the same run).
PARTIAL_RETRY_SPACING = timedelta(minutes=5)


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
        self._error = sql.Identifier(f"{p}_error")
        self._token = sql.Identifier(f"{p}_claim")
        self._status = sql.Identifier(self._spec.status_column)
        others = [sql.Identifier(f"{o.value}_error") for o in Stage if o is not stage]
        # error_message after this stage's reason is cleared: unchanged if it shows another
        # stage's standing reason, else another stage's reason still standing (or NULL). (A
        # reason requeue_failed left shown as the last error is no stage's any more.)
        self._message_after_clear = sql.SQL(
            "CASE WHEN error_message IN ({others}) THEN error_message ELSE coalesce({others}) END"
        ).format(others=sql.SQL(", ").join(others))

    def __repr__(self) -> str:
        return f"PostgresWorkQueue(stage={self.stage.value!r}, db={self._db!r})"

    def _fmt(self, template: str, **extra: sql.Composable) -> sql.Composed:
        spec = self._spec
        set_error_status = (
            sql.SQL("{} = {},").format(self._status, sql.Literal(spec.error_value))
            if spec.error_value is not None
            else sql.SQL("")
        )
        set_requeue_status = (
            sql.SQL("{s} = CASE WHEN {s} = {f} THEN {r} ELSE {s} END,").format(
                s=self._status, f=sql.Literal(spec.failed_value), r=sql.Literal(spec.requeue_value)
            )
            if spec.failed_value is not None
            else sql.SQL("")
        )
        # A row failed in this stage: its reason is set (and, where the stage's failure has a
        # status, the row is in it: a skipped sync keeps its reason but is not a failure).
        failed = (
            sql.SQL("({} IS NOT NULL AND {} = {})").format(
                self._error, self._status, sql.Literal(spec.failed_value)
            )
            if spec.failed_value is not None
            else sql.SQL("({} IS NOT NULL)").format(self._error)
        )
        return sql.SQL(template).format(
            owner=self._owner,
            lease=self._lease,
            attempts=self._attempts,
            next=self._next,
            err=self._error,
            token=self._token,
            status=self._status,
            eligible=spec.eligible,
            returning=_RETURNING,
            set_error_status=set_error_status,
            set_requeue_status=set_requeue_status,
            failed=failed,
            message_after_clear=self._message_after_clear,
            **extra,
        )

    def claim(self, owner: str, limit: int, lease: timedelta) -> list[Claim]:
        """Lease up to ``limit`` eligible products to ``owner``."""
        if limit <= 0:
            return []
        # Rows out of attempts whose worker is gone end failed, with their reason: those
        # whose lease lapsed, and those nobody holds (MAX_RETRIES was lowered). Two
        # statements, so each finds its few rows by an index (0006, 0007), not a scan.
        give_up = [
            self._fmt(
                "UPDATE raw_products SET {set_error_status} {err} = %(message)s,"
                " error_message = %(message)s, {owner} = NULL, {lease} = NULL,"
                " updated_at = now()"
                " WHERE id IN (SELECT id FROM raw_products WHERE {eligible} AND {err} IS NULL"
                " AND " + idle + " AND {attempts} >= %(max)s FOR UPDATE SKIP LOCKED)"
            )
            for idle in ("{lease} < now()", "{owner} IS NULL AND {attempts} > 0")
        ]
        claim = self._fmt(
            "UPDATE raw_products SET {owner} = %(owner)s, {lease} = now() + %(lease)s,"
            " {attempts} = {attempts} + 1, {token} = {token} + 1"
            " WHERE id IN (SELECT id FROM raw_products WHERE {eligible} AND {err} IS NULL"
            " AND ({lease} IS NULL OR {lease} < now())"
            " AND ({next} IS NULL OR {next} <= now())"
            " AND {attempts} < %(max)s"
            " ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED)"
            " RETURNING {returning}, {attempts} AS claim_attempt, {lease} AS claim_lease,"
            " {token} AS claim_token"
        )
        params: dict[str, Any] = {
            "owner": owner,
            "lease": lease,
            "limit": limit,
            "max": self._max_attempts,
            "message": (
                f"{self.stage.value}: gave up after {self._max_attempts} attempts"
                " (the worker holding it never finished)"
            ),
        }
        with self._db.transaction(f"claiming {self.stage.value} work") as cur:
            for statement in give_up:
                cur.execute(statement, params)
            cur.execute(claim, params)
            rows = cur.fetchall()
        claims = [
            Claim(
                stage=self.stage.value,
                owner=owner,
                attempt=int(row["claim_attempt"]),
                lease_until=row["claim_lease"],
                product=product_from_row(row),
                token=int(row["claim_token"]),
            )
            for row in rows
        ]
        claims.sort(key=lambda c: c.product.id)
        return claims

    def _held(self, template: str, claims: Sequence[Claim], what: str, **params: Any) -> int:
        """Run an UPDATE over the rows of ``claims`` still held under their tokens."""
        if not claims:
            return 0
        query = self._fmt(
            template + " FROM unnest(%(ids)s::bigint[], %(tokens)s::bigint[]) AS c(id, token)"
            " WHERE raw_products.id = c.id AND {token} = c.token AND {owner} = %(owner)s"
        )
        total = 0
        for owner, held in _by_owner(claims).items():
            with self._db.transaction(what) as cur:
                cur.execute(
                    query,
                    {
                        **params,
                        "ids": [c.product.id for c in held],
                        "tokens": [c.token for c in held],
                        "owner": owner,
                    },
                )
                total += cur.rowcount
        return total

    def extend(self, claims: Sequence[Claim], lease: timedelta) -> int:
        """Push the leases still held by these claims out to now + ``lease``."""
        return self._held(
            "UPDATE raw_products SET {lease} = now() + %(lease)s",
            claims,
            f"extending {self.stage.value} leases",
            lease=lease,
        )

    def complete(self, claim: Claim, outcome: Outcome) -> bool:
        """Write the stage's result, only while this claim still holds the lease."""
        return self.complete_many([(claim, outcome)])[0]

    def complete_many(self, done: Sequence[tuple[Claim, Outcome]]) -> list[bool]:
        """Write many results in one statement (one per outcome shape); see :meth:`_settle`."""
        items = [(claim, self._outcome(outcome)) for claim, outcome in done]
        return self._settle(items, "completing")

    def fail(self, claim: Claim, message: str) -> bool:
        """Mark the product failed in this stage (its reason kept), keeping its attempts."""
        return self.fail_many([(claim, message)])[0]

    def fail_many(self, failed: Sequence[tuple[Claim, str]]) -> list[bool]:
        """Mark many products failed in one statement; see :meth:`_settle`."""
        items = [(claim, self._failure(message)) for claim, message in failed]
        return self._settle(items, "failing")

    def _failure(self, message: str) -> dict[str, Any]:
        """Return the columns a failure writes."""
        text = redact_text(message)[:2000]
        values: dict[str, Any] = {}
        if self._spec.error_value is not None:
            values[self._spec.status_column] = str(self._spec.error_value)
        values.update({f"{self.stage.value}_error": text, "error_message": text})
        return values

    def _settle(self, items: Sequence[tuple[Claim, dict[str, Any]]], verb: str) -> list[bool]:
        """Write each item's columns where its claim still holds the lease; which were written.

        One ``UPDATE ... FROM unnest(...)`` per distinct set of columns and SQL expressions
        (one for a download or collage call, at most two for Ximilar's partial rows or a
        skipped sync), whatever the number of items: the round trips of a batch's
        bookkeeping do not grow with the batch. Values the items share are sent once; the
        rest as one typed array per column. The items behave as if written one after the
        other: a claim given twice is written by its first item only (the second finds the
        lease already given up).
        """
        written = [False] * len(items)
        seen: set[tuple[int, str, int]] = set()
        shapes: dict[tuple[tuple[str, str | None], ...], list[int]] = {}
        for n, (claim, values) in enumerate(items):
            key = (claim.product.id, claim.owner, claim.token)
            if key not in seen:
                seen.add(key)
                shapes.setdefault(_shape(values), []).append(n)
        if not shapes:
            return written
        if len(items) == 1:
            what = f"{verb} {self.stage.value} of {items[0][0].product.external_id}"
        else:
            what = f"{verb} {self.stage.value} of {len(items)} products"
        statements = [
            (self._settle_statement([items[n] for n in members]), members)
            for members in shapes.values()
        ]
        with self._db.statement(what) as cur:
            for (query, params), members in statements:
                cur.execute(query, params)
                for row in cur.fetchall():
                    written[members[int(row["n"]) - 1]] = True
        return written

    def _settle_statement(
        self, items: Sequence[tuple[Claim, dict[str, Any]]]
    ) -> tuple[sql.Composed, dict[str, Any]]:
        """The UPDATE writing ``items`` (all of one shape), and its parameters."""
        params: dict[str, Any] = {
            "ids": [c.product.id for c, _ in items],
            "tokens": [c.token for c, _ in items],
        }
        arrays: list[sql.Composable] = [
            sql.SQL("%(ids)s::bigint[]"),
            sql.SQL("%(tokens)s::bigint[]"),
        ]
        names = ["c_id", "c_token"]
        owners = {c.owner for c, _ in items}
        if len(owners) == 1:
            params["owner"] = owners.pop()
            owner: sql.Composable = sql.Placeholder("owner")
        else:
            params["owners"] = [c.owner for c, _ in items]
            arrays.append(sql.SQL("%(owners)s::text[]"))
            names.append("c_owner")
            owner = sql.SQL("v.c_owner")
        assignments: list[sql.Composable] = []
        for k, column in enumerate(items[0][1]):
            target = sql.Identifier(column)
            values = [v[column] for _, v in items]
            first = values[0]
            if isinstance(first, _Sql):
                assignments.append(sql.SQL("{} = {}").format(target, first.sql))
            elif all(_same(value, first) for value in values):
                params[f"k{k}"] = first  # shared by every item: sent once
                assignments.append(sql.SQL("{} = {}").format(target, sql.Placeholder(f"k{k}")))
            else:
                kind, cast, data = _array(column, values)
                params[f"a{k}"] = data
                arrays.append(sql.SQL("{}::" + kind + "[]").format(sql.Placeholder(f"a{k}")))
                names.append(f"c{k}")
                assignments.append(
                    sql.SQL("{} = v.{}" + cast).format(target, sql.Identifier(f"c{k}"))
                )
        query = self._fmt(
            "UPDATE raw_products AS r SET {sets}, {owner} = NULL, {lease} = NULL,"
            " updated_at = now()"
            " FROM unnest({arrays}) WITH ORDINALITY AS v({names})"
            " WHERE r.id = v.c_id AND r.{owner} = {claim_owner} AND r.{token} = v.c_token"
            " RETURNING v.n",
            sets=sql.SQL(", ").join(assignments),
            arrays=sql.SQL(", ").join(arrays),
            names=sql.SQL(", ").join(sql.Identifier(n) for n in [*names, "n"]),
            claim_owner=owner,
        )
        return query, params

    def _outcome(self, outcome: Outcome) -> dict[str, Any]:
        """Return the columns an outcome writes (``_Sql`` values are SQL expressions)."""
        err = f"{self.stage.value}_error"
        attempts = f"{self.stage.value}_attempts"
        cleared: dict[str, Any] = {
            err: None,
            "error_message": _Sql(self._message_after_clear),
            attempts: 0,
        }
        next_at = f"{self.stage.value}_next_at"
        match (self.stage, outcome):
            case (Stage.DOWNLOAD, PhotosStored(image_urls=urls)):
                status = next_image_status(ImageStatus.PENDING, ImageEvent.PHOTOS_STORED)
                return {
                    "image_urls": Jsonb(list(urls)),
                    "image_status": status.value,
                    next_at: None,
                    **cleared,
                }
            case (Stage.COLLAGE, CollageStored(collage_url=url)):
                status = next_image_status(ImageStatus.UPLOADED, ImageEvent.COLLAGE_STORED)
                return {"collage_url": url, "image_status": status.value, next_at: None, **cleared}
            case (Stage.XIMILAR, XimilarProgress(synced_urls=urls, record_ids=ids, status=status)):
                if status not in _XIMILAR_RESULTS:
                    raise UndecatError(f"ximilar: {status.value!r} is not a completion status")
                progress: dict[str, Any] = {
                    "ximilar_synced_urls": Jsonb(list(urls)),
                    "ximilar_record_ids": Jsonb(list(ids)),
                    "ximilar_status": status.value,
                    "ximilar_synced_at": _Sql(sql.SQL("now()")),
                    next_at: None,
                    **cleared,
                }
                if status is XimilarStatus.PARTIAL or (ids and status is XimilarStatus.PENDING):
                    # Work left (records not confirmed, or not yet deleted): tried again
                    # later, the attempt counted, so the rest of the queue gets its turn.
                    spacing = max(self._spacing, PARTIAL_RETRY_SPACING)
                    progress[next_at] = _Sql(sql.SQL("now() + {}").format(sql.Literal(spacing)))
                    del progress[attempts]
                return progress
            case (Stage.SYNC, ProductionDone(status=status, reason=reason)):
                event = _SYNC_EVENTS.get(status)
                if event is None:
                    raise UndecatError(f"sync: {status.value!r} is not a completion status")
                done: dict[str, Any] = {
                    "sync_status": next_sync_status(SyncStatus.PENDING, event).value,
                    "synced_at": _Sql(sql.SQL("now()")),
                    next_at: None,
                    **cleared,
                }
                if reason is not None:  # skipped: the reason is the sync stage's own
                    done.update({err: reason, "error_message": reason})
                return done
            case _:
                raise UndecatError(
                    f"{self.stage.value}: {type(outcome).__name__} is not an outcome of this stage"
                )

    def release(self, claims: Sequence[Claim]) -> int:
        """Hand products back untouched; the attempt is not counted (it was an outage)."""
        return self._held(
            "UPDATE raw_products SET {owner} = NULL, {lease} = NULL,"
            " {attempts} = GREATEST({attempts} - 1, 0)",
            claims,
            f"releasing {self.stage.value} leases",
        )

    def requeue_failed(self) -> int:
        """Send this stage's failed rows with attempts left back, spaced by the retry delay.

        A row failed in this stage when its ``<stage>_error`` is set; rows whose attempts
        are used up stay failed (``requeue`` with an operator's say-so brings them back).
        The stage's reason is cleared (the row no longer reads as failed) while
        ``error_message`` keeps it as the last error until the next attempt ends.
        """
        query = self._fmt(
            "UPDATE raw_products SET {set_requeue_status} {err} = NULL,"
            " {next} = now() + %(spacing)s, updated_at = now()"
            " WHERE {failed} AND {attempts} < %(max)s AND {owner} IS NULL"
            + ("" if self._spec.requeue_delisted else " AND delisted_at IS NULL")
        )
        params = {"max": self._max_attempts, "spacing": self._spacing}
        with self._db.transaction(f"requeueing failed {self.stage.value} work") as cur:
            cur.execute(query, params)
            return cur.rowcount

    def requeue(
        self, *, brand: str | None = None, reason: str | None = None, dry_run: bool = False
    ) -> int:
        """Put every failed row of this stage back with fresh attempts; return how many.

        ``brand`` and ``reason`` (a case-insensitive part of the stage's reason) narrow
        the rows; ``dry_run`` only counts them. This is ``undecat requeue``: the operator's
        say-so for rows whose attempts ran out.
        """
        where = (
            " WHERE {failed} AND ({lease} IS NULL OR {lease} < now())"
            " AND (%(brand)s::text IS NULL OR brand = %(brand)s)"
            " AND (%(reason)s::text IS NULL OR strpos(lower({err}), lower(%(reason)s)) > 0)"
        )
        if dry_run:
            query = self._fmt("SELECT count(*) AS n FROM raw_products" + where)
        else:
            query = self._fmt(
                "UPDATE raw_products SET {set_requeue_status} {err} = NULL,"
                " error_message = {message_after_clear}, {attempts} = 0, {next} = NULL,"
                " {owner} = NULL, {lease} = NULL, updated_at = now()" + where
            )
        params = {"brand": brand, "reason": reason}
        with self._db.transaction(f"requeueing given-up {self.stage.value} work") as cur:
            cur.execute(query, params)
            if dry_run:
                row = cur.fetchone()
                return int(row["n"]) if row else 0
            return cur.rowcount

    def counts(self) -> QueueCounts:
        """Return where this stage's rows stand (leased, stale, failed, exhausted, ...)."""
        query = self._fmt(
            "SELECT"
            " count(*) FILTER (WHERE {eligible} AND {err} IS NULL AND {owner} IS NULL"
            "   AND ({next} IS NULL OR {next} <= now()) AND {attempts} < %(max)s) AS claimable,"
            " count(*) FILTER (WHERE {owner} IS NOT NULL AND {lease} >= now()) AS leased,"
            " count(*) FILTER (WHERE {owner} IS NOT NULL AND {lease} < now()) AS stale,"
            " count(*) FILTER (WHERE {failed} AND {attempts} < %(max)s) AS failed,"
            " count(*) FILTER (WHERE {failed} AND {attempts} >= %(max)s) AS exhausted,"
            " count(*) FILTER (WHERE {eligible} AND {err} IS NULL AND {next} > now()) AS waiting"
            " FROM raw_products"
        )
        with self._db.transaction(f"counting {self.stage.value} work") as cur:
            cur.execute(query, {"max": self._max_attempts})
            row = cur.fetchone() or {}
        return QueueCounts(stage=self.stage, **{k: int(v) for k, v in row.items()})


@attrs.frozen
class _Sql:
    """An SQL expression among an outcome's column values (written as is, not a parameter)."""

    sql: sql.Composable


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


def _shape(values: dict[str, Any]) -> tuple[tuple[str, str | None], ...]:
    """The columns an item writes, and which of them are SQL expressions (and which)."""
    return tuple(
        (column, repr(value.sql) if isinstance(value, _Sql) else None)
        for column, value in values.items()
    )


def _plain(value: Any) -> Any:
    return value.obj if isinstance(value, Jsonb) else value


def _same(value: Any, other: Any) -> bool:
    return type(value) is type(other) and _plain(value) == _plain(other)


def _array(column: str, values: Sequence[Any]) -> tuple[str, str, list[Any]]:
    """One column's values as a typed array: (element type, cast to the column, values).

    JSON goes as text (orjson, one call per value) cast back to jsonb in the statement:
    psycopg then sends plain text arrays, not one adapted object per element.
    """
    present = {type(v) for v in values if v is not None}
    if present == {Jsonb}:
        texts = [None if v is None else orjson.dumps(v.obj).decode() for v in values]
        return "text", "::jsonb", texts
    if present == {str}:
        return "text", "", list(values)
    if present == {int}:
        return "bigint", "", list(values)
    kinds = ", ".join(sorted(t.__name__ for t in present))
    raise UndecatError(f"{column}: cannot write values of types {kinds} in one statement")


def _by_owner(claims: Sequence[Claim]) -> dict[str, list[Claim]]:
    grouped: dict[str, list[Claim]] = {}
    for claim in claims:
        grouped.setdefault(claim.owner, []).append(claim)
    return grouped
