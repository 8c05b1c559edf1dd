"""The operators' view of staging: the status report, queue depths and the health queries.

:class:`PostgresReport` is the :class:`~undecat.ports.OpsReport` (read-only queries over
``raw_products``, ``raw_availability`` and ``scraper_logs``); :class:`PostgresHealth` answers
the database questions of ``undecat health``: which migrations are missing, which grants the
connected role lacks, and when each job last ran and last succeeded.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from psycopg import sql

from undecat.adapters.postgres.connection import Database
from undecat.domain.report import (
    FUNNEL_COLUMNS,
    BrandFunnel,
    CollageThumb,
    DailyRuns,
    ErrorReason,
    JobRun,
    QueueDepth,
    Report,
    StageWork,
)
from undecat.domain.status import RunStatus

__all__ = ["HOST_GRANTS", "PostgresHealth", "PostgresReport"]

#: Statuses of a run that did its work (a partial run did, with some products failing).
_SUCCEEDED = (RunStatus.SUCCESS.value, RunStatus.PARTIAL.value)

#: stage -> (status column, the status its failures leave, its attempts column, lease prefix).
_STAGES: Mapping[str, tuple[str, str]] = {
    "download": ("image_status", "download"),
    "collage": ("image_status", "collage"),
    "ximilar": ("ximilar_status", "ximilar"),
    "sync": ("sync_status", "sync"),
}

# Products waiting per stage: (stage, status shown, condition). An image 'error' belongs to
# the stage whose attempt count is non-zero (only that stage's failure leaves it so).
_QUEUE_DEPTH = """
SELECT stage, status, brand, count(*) AS count FROM (
    SELECT brand,
           CASE WHEN image_status = 'pending' THEN 'download'
                WHEN image_status = 'uploaded' THEN 'collage'
                WHEN image_status = 'error' AND collage_attempts > 0 THEN 'collage'
                WHEN image_status = 'error' THEN 'download' END AS stage,
           CASE WHEN image_status = 'error' THEN 'error' ELSE 'pending' END AS status
      FROM raw_products
     WHERE delisted_at IS NULL AND image_status IN ('pending', 'uploaded', 'error')
    UNION ALL
    SELECT brand, 'ximilar', CASE WHEN ximilar_status = 'error' THEN 'error' ELSE 'pending' END
      FROM raw_products
     WHERE delisted_at IS NULL AND index_scope = 'pilot'
       AND ximilar_status IN ('pending', 'partial', 'error')
    UNION ALL
    SELECT brand, 'sync', sync_status
      FROM raw_products
     WHERE sync_status IN ('pending', 'error')
) waiting
GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
"""

_FUNNEL = """
SELECT brand, coalesce(image_status, 'pending') AS image,
       coalesce(ximilar_status, 'pending') AS ximilar,
       coalesce(sync_status, 'pending') AS sync, count(*) AS count
  FROM raw_products WHERE delisted_at IS NULL GROUP BY 1, 2, 3, 4
"""

# Active products with an availability row fetched today (UTC). raw_availability.product_id
# holds the product's external id within its brand.
_AVAILABLE_TODAY = """
SELECT p.brand, count(*) AS count
  FROM raw_products p
 WHERE p.delisted_at IS NULL
   AND EXISTS (SELECT 1 FROM raw_availability a
                WHERE a.brand = p.brand AND a.product_id = p.external_id
                  AND to_date_immutable(a.fetched_at) = (now() AT TIME ZONE 'UTC')::date)
 GROUP BY 1
"""

_LAST_RUNS = """
SELECT l.scraper_name, l.status, l.started_at, l.duration_seconds,
       coalesce(l.records_fetched, 0) AS records_fetched,
       coalesce(l.records_errors, 0) AS records_errors, l.error_message,
       (SELECT max(s.started_at) FROM scraper_logs s
         WHERE s.scraper_name = l.scraper_name AND s.status = ANY(%(ok)s)) AS last_success_at
  FROM (SELECT DISTINCT ON (scraper_name) * FROM scraper_logs
         ORDER BY scraper_name, started_at DESC, id DESC) l
 ORDER BY l.scraper_name
"""

_DAILY_RUNS = """
SELECT (started_at AT TIME ZONE 'UTC')::date AS day, status, count(*) AS count
  FROM scraper_logs WHERE started_at >= now() - make_interval(days => %(days)s)
 GROUP BY 1, 2 ORDER BY 1, 2
"""

# Error messages carry product ids, URLs and numbers: those are masked so that one reason
# is counted once however many products it hit.
_NORMALISED = (
    "regexp_replace(regexp_replace(split_part({col}, E'\\n', 1),"
    " 'https?://[^ ]+', '<url>', 'g'), '[0-9]+', 'N', 'g')"
)
_ERRORS = f"""
SELECT 'product' AS kind, {_NORMALISED.format(col="error_message")} AS reason, count(*) AS count
  FROM raw_products
 WHERE delisted_at IS NULL AND error_message IS NOT NULL
   AND 'error' IN (image_status, ximilar_status, sync_status)
 GROUP BY 1, 2
UNION ALL
SELECT 'run', {_NORMALISED.format(col="error_message")}, count(*)
  FROM scraper_logs
 WHERE error_message IS NOT NULL AND started_at >= now() - interval '7 days'
 GROUP BY 1, 2
ORDER BY 3 DESC, 2 LIMIT %(limit)s
"""

_COLLAGES = """
SELECT brand, external_id, name, collage_url FROM raw_products
 WHERE collage_url IS NOT NULL AND image_status = 'collage_ready' AND delisted_at IS NULL
 ORDER BY updated_at DESC NULLS LAST, id DESC LIMIT %(limit)s
"""


class PostgresReport:
    """The :class:`~undecat.ports.OpsReport` on the staging database."""

    def __init__(self, db: Database, *, max_attempts: int = 3) -> None:
        self._db = db
        self._max_attempts = max_attempts

    def __repr__(self) -> str:
        return f"PostgresReport(db={self._db!r})"

    def report(self, *, collages: int = 12) -> Report:
        """Read everything ``undecat status`` shows, in one transaction (one snapshot)."""
        with self._db.transaction("reading the status report") as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            cur.execute("SELECT now() AS now")
            now_row = cur.fetchone()
            cur.execute(_FUNNEL)
            funnel_rows = cur.fetchall()
            cur.execute(_AVAILABLE_TODAY)
            available = {row["brand"]: int(row["count"]) for row in cur.fetchall()}
            cur.execute(self._work_query(), {"max": self._max_attempts})
            work = tuple(
                StageWork(row["stage"], int(row["leased"]), int(row["stale"]), int(row["ex"]))
                for row in cur.fetchall()
            )
            cur.execute(_LAST_RUNS, {"ok": list(_SUCCEEDED)})
            runs = tuple(JobRun(**row) for row in cur.fetchall())
            cur.execute(_DAILY_RUNS, {"days": 14})
            daily = _daily(cur.fetchall())
            cur.execute(_ERRORS, {"limit": 10})
            errors = tuple(
                ErrorReason(row["reason"], int(row["count"]), row["kind"]) for row in cur.fetchall()
            )
            cur.execute(_COLLAGES, {"limit": collages})
            thumbs = tuple(
                CollageThumb(row["brand"], row["external_id"], row["name"], row["collage_url"])
                for row in cur.fetchall()
            )
        assert now_row is not None  # noqa: S101  # SELECT now() returns a row
        return Report(
            generated_at=now_row["now"],
            funnels=_funnels(funnel_rows, available),
            work=work,
            runs=runs,
            daily_runs=daily,
            errors=errors,
            collages=thumbs,
        )

    def queue_depth(self) -> list[QueueDepth]:
        """Return the products waiting per stage, status (pending / error) and brand."""
        with self._db.transaction("counting the queues") as cur:
            cur.execute(_QUEUE_DEPTH)
            return [QueueDepth(**row) for row in cur.fetchall()]

    @staticmethod
    def _work_query() -> sql.Composed:
        parts = [
            sql.SQL(
                "SELECT {stage} AS stage,"
                " count(*) FILTER (WHERE {owner} IS NOT NULL AND {until} > now()) AS leased,"
                " count(*) FILTER (WHERE {owner} IS NOT NULL AND {until} <= now()) AS stale,"
                " count(*) FILTER (WHERE {status} = 'error' AND {attempts} >= %(max)s) AS ex"
                " FROM raw_products"
            ).format(
                stage=sql.Literal(stage),
                owner=sql.Identifier(f"{prefix}_owner"),
                until=sql.Identifier(f"{prefix}_lease_until"),
                status=sql.Identifier(status),
                attempts=sql.Identifier(f"{prefix}_attempts"),
            )
            for stage, (status, prefix) in _STAGES.items()
        ]
        return sql.SQL(" UNION ALL ").join(parts)


def _funnels(
    rows: Iterable[Mapping[str, object]], available: Mapping[str, int]
) -> tuple[BrandFunnel, ...]:
    counts: dict[str, dict[str, dict[str, int]]] = defaultdict(
        lambda: {column: defaultdict(int) for column in FUNNEL_COLUMNS}
    )
    totals: dict[str, int] = defaultdict(int)
    for row in rows:
        brand, count = str(row["brand"]), int(row["count"])  # type: ignore[call-overload]
        totals[brand] += count
        for column in FUNNEL_COLUMNS:
            counts[brand][column][str(row[column])] += count
    return tuple(
        BrandFunnel(
            brand=brand,
            total=totals[brand],
            counts={column: dict(states) for column, states in counts[brand].items()},
            available_today=available.get(brand, 0),
        )
        for brand in sorted(totals)
    )


def _daily(rows: Iterable[Mapping[str, object]]) -> tuple[DailyRuns, ...]:
    days: dict[object, dict[str, int]] = defaultdict(dict)
    for row in rows:
        days[row["day"]][str(row["status"])] = int(row["count"])  # type: ignore[call-overload]
    return tuple(DailyRuns(day, statuses) for day, statuses in sorted(days.items()))  # type: ignore[arg-type]


# --- health -----------------------------------------------------------------------------------

_LOG_COLUMNS = (
    "status",
    "run_id",
    "records_fetched",
    "records_new",
    "records_updated",
    "records_errors",
    "completed_at",
    "duration_seconds",
    "error_message",
    "metadata",
)


def _stage_columns(prefix: str, *columns: str) -> tuple[str, ...]:
    lease = tuple(f"{prefix}_{c}" for c in ("owner", "lease_until", "attempts", "next_at"))
    return (*columns, "error_message", "updated_at", *lease)


#: What each host's database role must be allowed (migration 0003), as
#: (table, privilege, columns or () for the whole table).
HOST_GRANTS: Mapping[str, tuple[tuple[str, str, tuple[str, ...]], ...]] = {
    "apify": (
        ("raw_products", "SELECT", ()),
        ("raw_products", "INSERT", ()),
        (
            "raw_products",
            "UPDATE",
            (
                *("name", "description", "price", "currency", "category", "colour", "sizes"),
                *("composition", "original_image_urls", "raw_data", "scraped_at", "updated_at"),
                "delisted_at",
            ),
        ),
    ),
    "photo_downloader": (
        ("raw_products", "SELECT", ()),
        ("raw_products", "UPDATE", _stage_columns("download", "image_status", "image_urls")),
    ),
    "collage": (
        ("raw_products", "SELECT", ()),
        ("raw_products", "UPDATE", _stage_columns("collage", "image_status", "collage_url")),
    ),
    "ximilar_sync": (
        ("raw_products", "SELECT", ()),
        (
            "raw_products",
            "UPDATE",
            _stage_columns(
                "ximilar",
                "ximilar_status",
                "ximilar_synced_urls",
                "ximilar_synced_at",
                "ximilar_record_ids",
            ),
        ),
    ),
    "scraper": (
        ("raw_products", "SELECT", ()),
        ("raw_availability", "SELECT", ()),
        ("raw_availability", "INSERT", ()),
        ("raw_stores", "SELECT", ()),
        ("raw_stores", "INSERT", ()),
        ("raw_products", "UPDATE", _stage_columns("sync", "sync_status", "synced_at")),
    ),
}
_EVERY_HOST = (
    ("scraper_logs", "SELECT", ()),
    ("scraper_logs", "INSERT", ()),
    ("scraper_logs", "UPDATE", _LOG_COLUMNS),
)


class PostgresHealth:
    """The database questions of ``undecat health``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def __repr__(self) -> str:
        return f"PostgresHealth(db={self._db!r})"

    def applied_migrations(self) -> set[str] | None:
        """Return the migration files recorded as applied, or None with no bookkeeping table."""
        with self._db.transaction("reading schema_migrations") as cur:
            cur.execute("SELECT to_regclass('schema_migrations') IS NOT NULL AS present")
            row = cur.fetchone()
            if row is None or not row["present"]:
                return None
            cur.execute("SELECT filename FROM schema_migrations")
            return {r["filename"] for r in cur.fetchall()}

    def missing_grants(self, host: str) -> list[str]:
        """Return the privileges the connected role lacks for ``host``'s jobs (readable)."""
        missing: list[str] = []
        with self._db.transaction("checking the role's grants") as cur:
            for table, privilege, columns in (*_EVERY_HOST, *HOST_GRANTS.get(host, ())):
                cur.execute("SELECT to_regclass(%s) IS NOT NULL AS present", (table,))
                present = cur.fetchone()
                if present is None or not present["present"]:
                    missing.append(f"{table} (no such table)")
                    continue
                if not columns:
                    cur.execute(
                        "SELECT has_table_privilege(current_user, %s, %s) AS ok",
                        (table, privilege),
                    )
                    row = cur.fetchone()
                    if row is None or not row["ok"]:
                        missing.append(f"{privilege} on {table}")
                    continue
                cur.execute(
                    "SELECT c AS column FROM unnest(%s::text[]) c"
                    " WHERE NOT has_column_privilege(current_user, %s, c, %s)",
                    (list(columns), table, privilege),
                )
                lacking = [r["column"] for r in cur.fetchall()]
                if lacking:
                    missing.append(f"{privilege} ({', '.join(lacking)}) on {table}")
        return missing

    def job_runs(
        self, scraper_names: Sequence[str]
    ) -> dict[str, tuple[datetime | None, tuple[datetime, str] | None]]:
        """Return, per job, its last success and its last run (start, status)."""
        with self._db.transaction("reading the jobs' last runs") as cur:
            cur.execute(
                "SELECT n AS name,"
                " (SELECT max(started_at) FROM scraper_logs"
                "   WHERE scraper_name = n AND status = ANY(%(ok)s)) AS last_success,"
                " (SELECT started_at FROM scraper_logs WHERE scraper_name = n"
                "   ORDER BY started_at DESC, id DESC LIMIT 1) AS last_started,"
                " (SELECT status FROM scraper_logs WHERE scraper_name = n"
                "   ORDER BY started_at DESC, id DESC LIMIT 1) AS last_status"
                " FROM unnest(%(names)s::text[]) n",
                {"ok": list(_SUCCEEDED), "names": list(scraper_names)},
            )
            rows = cur.fetchall()
        return {
            row["name"]: (
                row["last_success"],
                None
                if row["last_started"] is None
                else (row["last_started"], str(row["last_status"])),
            )
            for row in rows
        }

    def now(self) -> datetime:
        """The database server's clock (the one ``scraper_logs`` timestamps come from)."""
        with self._db.transaction("reading the clock") as cur:
            cur.execute("SELECT now() AS now")
            row = cur.fetchone()
        assert row is not None  # noqa: S101
        return row["now"]  # type: ignore[no-any-return]
