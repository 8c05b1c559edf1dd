"""Migrations: in order, once, concurrently safe, refusing edited files; and the CLI's errors."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from pathlib import Path

import psycopg
import pytest

from tests.fix_db import PgServer
from tests.fix_pgbouncer import Bouncer
from undecat.adapters.postgres import apply_migrations, load_migrations
from undecat.adapters.postgres.migrate import sql_root
from undecat.errors import MigrationError
from undecat.redact import Secret


@pytest.fixture
def fresh(pg_server: PgServer) -> Secret:
    """A DSN of a new empty database (dropped at the end of the session's server)."""
    return Secret(pg_server.dsn_for(pg_server.create_database("t_migrate")))


def _applied(url: Secret) -> list[str]:
    with psycopg.connect(url.reveal()) as conn:
        return [r[0] for r in conn.execute("SELECT filename FROM schema_migrations ORDER BY 1")]


def test_applies_every_staging_file_in_order_then_nothing(fresh: Secret) -> None:
    """The first run applies all files in number order; the second applies none."""
    names = [m.filename for m in load_migrations("staging")]
    assert names[0] == "0001_initial_schema.sql"
    assert names == sorted(names)
    assert apply_migrations(fresh, "staging") == names
    assert apply_migrations(fresh, "staging") == []
    assert _applied(fresh) == names


def test_migrating_through_pgbouncer_works(pg_server: PgServer, pgbouncer: Bouncer) -> None:
    """Migrations run through PgBouncer in transaction mode (no session locks, no prepares)."""
    name = pg_server.create_database("t_migrate_bouncer")
    url = Secret(pgbouncer.dsn_for(name))
    assert apply_migrations(url, "staging") == [m.filename for m in load_migrations("staging")]
    assert apply_migrations(url, "staging") == []


def test_two_hosts_migrating_at_once_apply_each_file_once(fresh: Secret) -> None:
    """Concurrent runs on an empty database both succeed and apply every file exactly once."""
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(apply_migrations(fresh, "staging"))
        except BaseException as exc:  # noqa: BLE001  # asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    applied = sorted(name for result in results for name in result)
    assert applied == [m.filename for m in load_migrations("staging")]


def _copy_sql(tmp_path: Path) -> Path:
    root = tmp_path / "sql"
    shutil.copytree(sql_root(), root)
    return root


def test_an_edited_applied_file_stops_the_run_before_anything_new(
    fresh: Secret, tmp_path: Path
) -> None:
    """Editing an applied file is refused, and the new file waiting behind it is not applied."""
    root = _copy_sql(tmp_path)
    apply_migrations(fresh, "staging", root)
    first = root / "staging" / "0001_initial_schema.sql"
    first.write_text(first.read_text() + "\n-- a harmless-looking edit\n")
    (root / "staging" / "0999_new.sql").write_text("CREATE TABLE should_not_exist (x int);")
    with pytest.raises(
        MigrationError, match=r"0001_initial_schema\.sql was edited after it was applied"
    ):
        apply_migrations(fresh, "staging", root)
    with psycopg.connect(fresh.reveal()) as conn:
        assert conn.execute("SELECT to_regclass('should_not_exist')").fetchone() == (None,)


def test_a_failing_file_leaves_nothing_half_applied(fresh: Secret, tmp_path: Path) -> None:
    """A migration failing half-way is rolled back whole and not recorded."""
    root = _copy_sql(tmp_path)
    (root / "staging" / "0999_broken.sql").write_text(
        "CREATE TABLE half_done (x int);\nSELECT no_such_function();\n"
    )
    with pytest.raises(MigrationError, match=r"0999_broken\.sql failed, nothing of it applied"):
        apply_migrations(fresh, "staging", root)
    with psycopg.connect(fresh.reveal()) as conn:
        assert conn.execute("SELECT to_regclass('half_done')").fetchone() == (None,)
    assert "0999_broken.sql" not in _applied(fresh)
    assert "0004_status_checks.sql" in _applied(fresh)  # the good files before it stay


def test_misnamed_and_duplicate_numbers_are_refused(tmp_path: Path) -> None:
    """Files must be NNNN_lower_case.sql with distinct numbers."""
    folder = tmp_path / "staging"
    folder.mkdir()
    (folder / "0001_a.sql").write_text("SELECT 1;")
    (folder / "0001_b.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="share the number 0001"):
        load_migrations("staging", tmp_path)
    (folder / "0001_b.sql").unlink()
    (folder / "2_Bad Name.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match=r"NNNN_lower_case\.sql"):
        load_migrations("staging", tmp_path)


def test_production_has_nothing_to_apply_yet(fresh: Secret) -> None:
    """The production database migrates cleanly (its schema arrives with its issue)."""
    assert apply_migrations(fresh, "production") == [
        m.filename for m in load_migrations("production")
    ]


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "undecat.cli", *args],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
        timeout=60,
        check=False,
    )


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("undecat: ")
    return lines[0]


def test_cli_migrates_and_reports(fresh: Secret) -> None:
    """`undecat migrate` applies the files and says so; a second run says up to date."""
    first = _cli("migrate", "--database", "staging", env={"STAGING_DB_URL": fresh.reveal()})
    assert first.returncode == 0, first.stderr
    assert "applied" in first.stdout
    second = _cli("migrate", "--database", "staging", env={"STAGING_DB_URL": fresh.reveal()})
    assert second.returncode == 0
    assert "up to date" in second.stdout


def test_cli_unreachable_database_is_one_clear_line() -> None:
    """A database nobody listens on: one line naming it, exit 1."""
    from undecat.adapters.postgres.embedded import free_port  # noqa: PLC0415

    url = f"postgresql://apify:s3cr3t-pass@127.0.0.1:{free_port()}/unde_staging"
    result = _cli("migrate", env={"STAGING_DB_URL": url})
    assert result.returncode == 1
    line = _one_line_error(result)
    assert "database unavailable" in line
    assert "s3cr3t-pass" not in result.stderr + result.stdout


def test_cli_wrong_password_is_one_clear_line(pg_server: PgServer) -> None:
    """A refused password is configuration: one line naming STAGING_DB_URL, exit 2, no password."""
    with psycopg.connect(pg_server.admin_dsn, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS t_pw_user")
        conn.execute("CREATE ROLE t_pw_user LOGIN PASSWORD 'right-password'")
    url = pg_server.dsn_for("postgres", user="t_pw_user", password="wrong-password-42")
    result = _cli("migrate", env={"STAGING_DB_URL": url})
    if pg_server.embedded is not None:
        # A server given by UNDECAT_TEST_DSN may trust local connections, so the refusal
        # then comes from the missing privilege instead (exit 1); either way one line.
        assert "password authentication failed" in result.stderr
        assert "check STAGING_DB_URL" in result.stderr
        assert result.returncode == 2
    else:
        assert result.returncode in (1, 2)
    _one_line_error(result)
    assert "wrong-password-42" not in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("mysql://u:p@h/db", "STAGING_DB_URL must start with postgresql:// or postgres://"),
        ("postgresql://u:hunter2@h:notaport/db", "STAGING_DB_URL is not a valid URL"),
    ],
)
def test_cli_malformed_url_is_one_clear_line(value: str, expected: str) -> None:
    """A malformed URL names the variable, exits 2 and never echoes the password."""
    result = _cli("migrate", env={"STAGING_DB_URL": value})
    assert result.returncode == 2
    assert expected in _one_line_error(result)
    assert "hunter2" not in result.stderr


def test_cli_edited_migration_is_one_clear_line(fresh: Secret, tmp_path: Path) -> None:
    """An edited applied file: one line naming it, exit 1."""
    root = _copy_sql(tmp_path)
    apply_migrations(fresh, "staging", root)
    edited = root / "staging" / "0002_stage_leases.sql"
    edited.write_text(edited.read_text().replace("-- 0002", "-- 0002 (edited)"))
    result = _cli("migrate", "--sql-dir", str(root), env={"STAGING_DB_URL": fresh.reveal()})
    assert result.returncode == 1
    assert "0002_stage_leases.sql was edited after it was applied" in _one_line_error(result)
