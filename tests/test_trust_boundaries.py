"""A host cannot forge another stage's work, nor rewrite another host's run logs (issue 16.2-3).

Every refusal here comes from the database (privileges, the stage_transitions guard of
migration 0009, row-level security), connecting as each host's own role: no code of ours
stands between the statement and the server.
"""

from __future__ import annotations

import itertools

import psycopg
import pytest
from psycopg import errors, sql

from tests.fix_db import PgServer
from tests.seed import seed_rows
from undecat import cli
from undecat.adapters.postgres import Database, PostgresRunRecorder
from undecat.domain.models import RunResult
from undecat.domain.status import ImageStatus, SyncStatus, XimilarStatus
from undecat.redact import Secret

PASSWORD = "trust-test-password"
ROLES = ("apify", "downloader", "collage", "ximilar", "scraper", "reporter")

_LEASE = ("owner", "lease_until", "attempts", "next_at", "claim", "error")  # 0002, 0007

#: The one table of what each role may UPDATE in raw_products (extend it with the grants).
UPDATABLE: dict[str, frozenset[str]] = {
    "apify": frozenset(
        {
            "name",
            "description",
            "price",
            "currency",
            "category",
            "colour",
            "sizes",
            "composition",
            "original_image_urls",
            "raw_data",
            "scraped_at",
            "updated_at",
            "delisted_at",
        }
    ),
    "downloader": frozenset(
        {"image_status", "image_urls", "error_message", "updated_at"}
        | {f"download_{c}" for c in _LEASE}
    ),
    "collage": frozenset(
        {"image_status", "collage_url", "error_message", "updated_at"}
        | {"objects_purged_at"}  # 0011: the retention job marks what it deleted
        | {f"collage_{c}" for c in _LEASE}
    ),
    "ximilar": frozenset(
        {
            "ximilar_status",
            "ximilar_synced_urls",
            "ximilar_synced_at",
            "ximilar_record_ids",
            "ximilar_pending_ids",  # 0010: ids noted before they are sent
            "error_message",
            "updated_at",
        }
        | {f"ximilar_{c}" for c in _LEASE}
    ),
    "scraper": frozenset(
        {"sync_status", "synced_at", "error_message", "updated_at"} | {f"sync_{c}" for c in _LEASE}
    ),
    "reporter": frozenset(),
}

#: What each role may name in an INSERT into raw_products.
INSERTABLE: dict[str, frozenset[str]] = {
    "apify": frozenset(
        {
            "source",
            "external_id",
            "brand",
            "name",
            "description",
            "price",
            "currency",
            "category",
            "colour",
            "sizes",
            "composition",
            "original_image_urls",
            "raw_data",
            "scraped_at",
            "image_status",
        }
    ),
}

#: The transitions each role may make itself (the spec of stage_transitions in 0009).
TRANSITIONS: dict[tuple[str, str], frozenset[tuple[str, str]]] = {
    ("downloader", "image_status"): frozenset(
        {("pending", "uploaded"), ("pending", "error"), ("error", "pending")}
    ),
    ("collage", "image_status"): frozenset(
        {("uploaded", "collage_ready"), ("uploaded", "error"), ("error", "uploaded")}
    ),
    ("ximilar", "ximilar_status"): frozenset(
        {
            ("pending", "partial"),
            ("pending", "synced"),
            ("pending", "error"),
            ("partial", "synced"),
            ("partial", "error"),
            ("partial", "pending"),
            ("synced", "pending"),
            ("synced", "error"),
            ("error", "pending"),
        }
    ),
    ("scraper", "sync_status"): frozenset(
        {("pending", "synced"), ("pending", "skipped"), ("pending", "error"), ("error", "pending")}
    ),
}
#: Made only by 0008's trigger on a host's behalf (no role may write sync_status itself):
#: a stage's new photos, collage or records reopen a synced or skipped product (0013).
REOPENS_SYNC = {
    (role, "sync_status", before, "pending")
    for role in ("downloader", "collage", "ximilar")
    for before in ("synced", "skipped")
}
STATES = {
    "image_status": [s.value for s in ImageStatus],
    "ximilar_status": [s.value for s in XimilarStatus],
    "sync_status": [s.value for s in SyncStatus],
}


@pytest.fixture(scope="module")
def dsn(pg_server: PgServer, staging_dsn: str) -> dict[str, str]:
    """A DSN per role (the reporting role included) on the module's staging database."""
    with psycopg.connect(pg_server.admin_dsn, autocommit=True) as conn:
        for role in ROLES:
            conn.execute(
                sql.SQL("ALTER ROLE {} WITH LOGIN PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(PASSWORD)
                )
            )
    dbname = str(psycopg.conninfo.conninfo_to_dict(staging_dsn)["dbname"])
    return {role: pg_server.dsn_for(dbname, user=role, password=PASSWORD) for role in ROLES}


@pytest.fixture
def clean(staging_db: Database, staging_dsn: str) -> str:
    """The module's staging database, emptied (scraper_logs too)."""
    with psycopg.connect(staging_dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE scraper_logs")
    return staging_dsn


def _columns(admin_dsn: str) -> list[str]:
    with psycopg.connect(admin_dsn) as conn:
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_name = 'raw_products' ORDER BY ordinal_position"
        ).fetchall()
    return [r[0] for r in rows]


@pytest.mark.parametrize("role", ROLES)
def test_each_role_updates_only_its_own_columns(
    role: str, dsn: dict[str, str], staging_dsn: str
) -> None:
    """For every column of raw_products, UPDATE is allowed exactly to the roles listed."""
    refused, allowed = [], []
    with psycopg.connect(dsn[role], autocommit=True) as conn:
        for column in _columns(staging_dsn):
            statement = sql.SQL("UPDATE raw_products SET {c} = {c} WHERE false").format(
                c=sql.Identifier(column)
            )
            try:
                conn.execute(statement)
                allowed.append(column)
            except errors.InsufficientPrivilege:
                refused.append(column)
    assert set(allowed) == UPDATABLE[role]
    assert refused  # every role is refused most of the table


@pytest.mark.parametrize("role", ROLES)
def test_each_role_inserts_only_its_own_columns(
    role: str, dsn: dict[str, str], staging_dsn: str
) -> None:
    """Only collect inserts products, naming catalog columns only."""
    allowed = []
    with psycopg.connect(dsn[role], autocommit=True) as conn:
        for column in _columns(staging_dsn):
            statement = sql.SQL(
                "INSERT INTO raw_products ({c}) SELECT {c} FROM raw_products WHERE false"
            ).format(c=sql.Identifier(column))
            try:
                conn.execute(statement)
                allowed.append(column)
            except errors.InsufficientPrivilege:
                pass
    assert set(allowed) == INSERTABLE.get(role, frozenset())


FORGED = {
    "image_status collage_ready": ("image_status", "'collage_ready'"),
    "image_status uploaded": ("image_status", "'uploaded'"),
    "index_scope pilot": ("index_scope", "'pilot'"),
    "collage_url": ("collage_url", "'https://evil.example/c.jpg'"),
    "image_urls": ("image_urls", "'[\"https://evil.example/a.jpg\"]'"),
    "ximilar_status": ("ximilar_status", "'synced'"),
    "sync_status": ("sync_status", "'synced'"),
    "ximilar_record_ids": ("ximilar_record_ids", "'[\"x\"]'"),
}


@pytest.mark.parametrize(("column", "value"), FORGED.values(), ids=FORGED.keys())
def test_collect_cannot_create_rows_as_another_stages_work(
    column: str, value: str, dsn: dict[str, str], clean: str
) -> None:
    """An INSERT by the apify role with any downstream state set is refused."""
    statement = (
        f"INSERT INTO raw_products (source, external_id, brand, scraped_at, {column})"
        f" VALUES ('zara_uae', 'forged', 'zara', now(), {value})"
    )
    with psycopg.connect(dsn["apify"]) as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute(statement)  # test statements
    with psycopg.connect(clean) as conn:
        assert conn.execute("SELECT count(*) FROM raw_products").fetchone() == (0,)


def test_collect_still_creates_pending_rows(dsn: dict[str, str], clean: str) -> None:
    """The apify role's own insert (image_status 'pending', nothing else) goes through."""
    with psycopg.connect(dsn["apify"]) as conn:
        conn.execute(
            "INSERT INTO raw_products (source, external_id, brand, scraped_at, image_status)"
            " VALUES ('zara_uae', 'fine', 'zara', now(), 'pending')"
        )
    with psycopg.connect(clean) as conn:
        row = conn.execute("SELECT image_status, index_scope FROM raw_products").fetchone()
    assert row == ("pending", "off")


def _pairs() -> list[tuple[str, str, str, str]]:
    return [
        (role, column, before, after)
        for (role, column) in TRANSITIONS
        for before, after in itertools.permutations(STATES[column], 2)
    ]


def test_each_role_makes_only_its_own_transitions(dsn: dict[str, str], clean: str) -> None:
    """Every (from, to) of a role's status column is allowed iff it is its stage's transition."""
    cases = _pairs()
    seed_rows(clean, len(cases))
    with psycopg.connect(clean, autocommit=True) as admin:
        ids = [r[0] for r in admin.execute("SELECT id FROM raw_products ORDER BY id").fetchall()]
        for row_id, (_, column, before, _) in zip(ids, cases, strict=True):
            admin.execute(
                sql.SQL("UPDATE raw_products SET {} = %s WHERE id = %s").format(
                    sql.Identifier(column)
                ),
                (before, row_id),
            )
    wrong: list[str] = []
    for row_id, (role, column, before, after) in zip(ids, cases, strict=True):
        allowed = (before, after) in TRANSITIONS[role, column]
        with psycopg.connect(dsn[role], autocommit=True) as conn:
            statement = sql.SQL("UPDATE raw_products SET {} = %s WHERE id = %s").format(
                sql.Identifier(column)
            )
            try:
                conn.execute(statement, (after, row_id))
                done = True
            except errors.InsufficientPrivilege:
                done = False
        if done != allowed:
            wrong.append(f"{role} {column} {before}->{after}: {'done' if done else 'refused'}")
    assert wrong == []


def test_the_transition_table_in_the_database_is_the_spec(clean: str) -> None:
    """stage_transitions holds exactly the host transitions above, plus collect's resets."""
    with psycopg.connect(clean) as conn:
        rows = conn.execute(
            "SELECT role, status_column, from_status, to_status FROM stage_transitions"
        ).fetchall()
    hosts = {(r, c, b, a) for r, c, b, a in rows if r != "apify"}
    assert (
        hosts
        == {(r, c, b, a) for (r, c), pairs in TRANSITIONS.items() for b, a in pairs} | REOPENS_SYNC
    )
    assert {a for r, _, _, a in rows if r == "apify"} == {"pending"}


def test_run_logs_belong_to_their_writer(dsn: dict[str, str], clean: str) -> None:
    """Another role neither sees, rewrites, nor forges a host's scraper_logs rows."""
    apify = Database(Secret(dsn["apify"]), name="apify", max_size=1)
    try:
        recorder = PostgresRunRecorder(apify)
        run = recorder.start("apify_zara")
        recorder.finish(run, RunResult(status="failed", error_message="actor failed"))
        assert [r.scraper_name for r in recorder.recent()] == ["apify_zara"]
    finally:
        apify.close()
    with psycopg.connect(dsn["downloader"], autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM scraper_logs").fetchone() == (0,)
        cur = conn.execute("UPDATE scraper_logs SET status = 'success' WHERE id = %s", (run.id,))
        assert cur.rowcount == 0
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute(
                "INSERT INTO scraper_logs (scraper_name, status, started_at, db_role)"
                " VALUES ('apify_zara', 'success', now(), 'apify')"
            )
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("UPDATE scraper_logs SET db_role = 'downloader'")
    with psycopg.connect(clean) as conn:
        row = conn.execute("SELECT status, db_role FROM scraper_logs").fetchone()
    assert row == ("failed", "apify")


def test_reporter_reads_every_run_and_writes_nothing(dsn: dict[str, str], clean: str) -> None:
    """The reporting role sees every host's rows and can change none."""
    for role in ("apify", "downloader"):
        db = Database(Secret(dsn[role]), name=role, max_size=1)
        try:
            PostgresRunRecorder(db).start(f"{role}_job")
        finally:
            db.close()
    with psycopg.connect(dsn["reporter"], autocommit=True) as conn:
        roles = conn.execute("SELECT db_role FROM scraper_logs ORDER BY db_role").fetchall()
        assert roles == [("apify",), ("downloader",)]
        for statement in (
            "UPDATE scraper_logs SET status = 'failed'",
            "INSERT INTO scraper_logs (scraper_name, status, started_at)"
            " VALUES ('x', 'running', now())",
            "UPDATE raw_products SET image_status = 'error'",
            "DELETE FROM scraper_logs",
            "TRUNCATE raw_products",
        ):
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute(statement)  # test statements


def test_undecat_status_runs_as_the_reporting_role(
    dsn: dict[str, str],
    clean: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`undecat status` with the reporter's URL lists every host's runs."""
    seed_rows(clean, 2)
    for role in ("apify", "collage"):
        db = Database(Secret(dsn[role]), name=role, max_size=1)
        try:
            PostgresRunRecorder(db).start(f"{role}_job")
        finally:
            db.close()
    monkeypatch.setenv("STAGING_DB_URL", dsn["reporter"])
    assert cli.main(["status"]) == 0
    out = capsys.readouterr().out
    assert "apify_job" in out
    assert "collage_job" in out


def test_a_stage_completion_reopens_the_sync_through_the_guard(
    dsn: dict[str, str], clean: str
) -> None:
    """The collage host completing a synced product reopens its sync: the guard lets it by."""
    seed_rows(clean, 1)
    with psycopg.connect(clean, autocommit=True) as admin:
        admin.execute(
            "UPDATE raw_products SET image_status = 'uploaded', sync_status = 'skipped',"
            " sync_error = 'not ready', error_message = 'not ready'"
        )
    with psycopg.connect(dsn["collage"], autocommit=True) as conn:
        conn.execute(
            "UPDATE raw_products SET image_status = 'collage_ready',"
            " collage_url = 'https://s3.test/c.jpg'"
        )
    with psycopg.connect(clean) as admin:
        row = admin.execute(
            "SELECT sync_status, sync_error, error_message FROM raw_products"
        ).fetchone()
    assert row == ("pending", None, None)
