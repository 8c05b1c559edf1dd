"""``scraper_logs``: one row per job run, opened at start and closed at the end."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
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

_log = logging.getLogger("undecat.adapters.postgres.runs")


@attrs.frozen
class OpenRun:
    """A ``scraper_logs`` row opened by :meth:`PostgresRunRecorder.start`."""

    id: int
    started_at: datetime


class PostgresRunRecorder:
    """The :class:`~undecat.ports.RunRecorder` on PostgreSQL.

    With ``stale_after``, opening a run whose metadata names its ``host`` first marks that
    host's older ``running`` rows of the same job, started more than ``stale_after`` ago, as
    ``abandoned``: their process died (a crash, SIGKILL, a reboot) without closing them.
    """

    def __init__(
        self,
        db: Database,
        *,
        secrets: tuple[str, ...] = (),
        stale_after: timedelta | None = None,
    ) -> None:
        self._db = db
        self._secrets = secrets
        self._stale_after = stale_after

    def __repr__(self) -> str:
        return f"PostgresRunRecorder(db={self._db!r})"

    def start(self, scraper_name: str, metadata: dict[str, Any] | None = None) -> OpenRun:
        """Open a run row with status ``running`` (marking its host's dead runs abandoned).

        One statement, one round trip: the abandoned runs are marked in a data-modifying
        CTE of the INSERT.
        """
        host = (metadata or {}).get("host")
        with self._db.statement(f"opening the run log of {scraper_name}") as cur:
            cur.execute(
                "WITH abandoned AS ("
                " UPDATE scraper_logs SET status = %(abandoned)s,"
                " completed_at = clock_timestamp(),"
                " duration_seconds = round(extract(epoch FROM clock_timestamp() - started_at)),"
                " error_message = %(message)s"
                " WHERE %(host)s::text IS NOT NULL AND %(after)s::interval IS NOT NULL"
                " AND scraper_name = %(name)s AND status = %(running)s"
                " AND metadata->>'host' = %(host)s"
                " AND started_at < clock_timestamp() - %(after)s::interval"
                " RETURNING 1)"
                " INSERT INTO scraper_logs (scraper_name, status, started_at, metadata)"
                " SELECT %(name)s, %(running)s, clock_timestamp(), %(metadata)s::jsonb"
                " || CASE WHEN (SELECT count(*) FROM abandoned) > 0"
                " THEN jsonb_build_object('abandoned_runs', (SELECT count(*) FROM abandoned))"
                " ELSE '{}'::jsonb END"
                " RETURNING id, started_at, (SELECT count(*) FROM abandoned) AS abandoned",
                {
                    "abandoned": RunStatus.ABANDONED.value,
                    "running": RunStatus.RUNNING.value,
                    "name": scraper_name,
                    "host": None if host is None else str(host),
                    "after": self._stale_after,
                    "metadata": Jsonb(metadata or {}),
                    "message": (
                        "abandoned: still 'running' past its time limit when a later run"
                        " of the job started on the same host (its process died)"
                    ),
                },
            )
            row = cur.fetchone()
        if row is None:  # pragma: no cover  # INSERT ... RETURNING returns the row
            raise UndecatError("scraper_logs: INSERT returned no row")
        abandoned = int(row["abandoned"])
        if abandoned:
            _log.warning("%s: marked %d dead run(s) of %s abandoned", scraper_name, abandoned, host)
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
