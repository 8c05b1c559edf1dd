"""``scraper_logs``: one row per job run, opened at start and closed at the end."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import attrs
from psycopg.types.json import Jsonb

from undecat.adapters.postgres.connection import Database
from undecat.adapters.postgres.rows import run_log_from_row
from undecat.domain.models import RunLog, RunResult, StatusCount
from undecat.domain.status import RunStatus
from undecat.errors import UndecatError
from undecat.ports import RunningLog
from undecat.redact import redact_text

__all__ = ["OpenRun", "PostgresRunRecorder", "PostgresStatusReport"]


@attrs.frozen
class OpenRun:
    """A ``scraper_logs`` row opened by :meth:`PostgresRunRecorder.start`."""

    id: int
    started_at: datetime


class PostgresRunRecorder:
    """The :class:`~undecat.ports.RunRecorder` on PostgreSQL."""

    def __init__(self, db: Database, *, secrets: tuple[str, ...] = ()) -> None:
        self._db = db
        self._secrets = secrets

    def __repr__(self) -> str:
        return f"PostgresRunRecorder(db={self._db!r})"

    def start(self, scraper_name: str, metadata: dict[str, Any] | None = None) -> OpenRun:
        """Open a run row with status ``running``."""
        with self._db.statement(f"opening the run log of {scraper_name}") as cur:
            cur.execute(
                "INSERT INTO scraper_logs (scraper_name, status, started_at, metadata)"
                " VALUES (%s, %s, clock_timestamp(), %s) RETURNING id, started_at",
                (scraper_name, RunStatus.RUNNING.value, Jsonb(metadata or {})),
            )
            row = cur.fetchone()
        if row is None:  # pragma: no cover  # INSERT ... RETURNING returns the row
            raise UndecatError("scraper_logs: INSERT returned no row")
        return OpenRun(id=row["id"], started_at=row["started_at"])

    def finish(self, run: RunningLog, result: RunResult) -> None:
        """Close the run row with counts, duration, error text and metadata."""
        error = (
            None
            if result.error_message is None
            else redact_text(result.error_message, self._secrets)
        )
        with self._db.statement("closing a run log") as cur:
            cur.execute(
                "UPDATE scraper_logs SET status = %(status)s, run_id = %(run_id)s,"
                " records_fetched = %(fetched)s, records_new = %(new)s,"
                " records_updated = %(updated)s, records_errors = %(errors)s,"
                " completed_at = clock_timestamp(),"
                " duration_seconds = round(extract(epoch FROM clock_timestamp() - started_at)),"
                " error_message = %(error)s,"
                " metadata = coalesce(metadata, '{}'::jsonb) || %(metadata)s"
                " WHERE id = %(id)s",
                {
                    "status": result.status,
                    "run_id": result.run_id,
                    "fetched": result.records_fetched,
                    "new": result.records_new,
                    "updated": result.records_updated,
                    "errors": result.records_errors,
                    "error": error,
                    "metadata": Jsonb(result.metadata),
                    "id": run.id,
                },
            )

    def recent(self, scraper_name: str | None = None, limit: int = 20) -> list[RunLog]:
        """Return the latest runs (of ``scraper_name`` if given), newest first."""
        with self._db.transaction("reading run logs") as cur:
            cur.execute(
                "SELECT * FROM scraper_logs WHERE %(name)s::text IS NULL OR scraper_name = %(name)s"
                " ORDER BY started_at DESC, id DESC LIMIT %(limit)s",
                {"name": scraper_name, "limit": limit},
            )
            return [run_log_from_row(row) for row in cur.fetchall()]


class PostgresStatusReport:
    """The :class:`~undecat.ports.StatusReport` on PostgreSQL."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def status_counts(self) -> list[StatusCount]:
        """Return product counts by brand and statuses (delisted products left out)."""
        with self._db.transaction("counting products by status") as cur:
            cur.execute(
                "SELECT brand, coalesce(image_status, 'pending') AS image_status,"
                " coalesce(ximilar_status, 'pending') AS ximilar_status,"
                " coalesce(sync_status, 'pending') AS sync_status, count(*) AS count"
                " FROM raw_products WHERE delisted_at IS NULL"
                " GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"
            )
            return [StatusCount(**row) for row in cur.fetchall()]
