"""Issue 17 item 2: releases and upgrades.

The runners are the installed package's entry points; ``migrate`` gives up on a held lock
instead of queueing every job behind it, builds indexes concurrently, and every migration is
expand-only, so the previous release's jobs keep running against the migrated schema.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path

import psycopg
import pytest

from tests.fix_db import PgServer
from tests.fix_origin import Origin, Reply
from tests.fix_proxy import ProxyServer
from tests.fix_s3 import S3Bucket
from tests.photo_samples import rgb_jpeg
from tests.seed import draft
from tests.strategies import zara_item
from undecat.adapters.postgres import Database, PostgresCatalogStore, apply_migrations
from undecat.errors import MigrationError
from undecat.redact import Secret

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
#: The commit of the release before this one (docs/upgrade.md: bump it when releasing).
PREVIOUS_RELEASE = (ROOT / "tests" / "previous_release.txt").read_text().split()[0]


def _run(argv: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("STAGING_", "S3_"))}
    return subprocess.run(
        argv, env={**base, **env}, capture_output=True, text=True, timeout=300, check=False
    )


# --- entry points --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "script"),
    [
        ("apify", "undecat-apify"),
        ("photo_downloader", "undecat-photo-downloader"),
        ("collage", "undecat-collage"),
        ("ximilar_sync", "undecat-ximilar-sync"),
        ("scraper", "undecat-scraper"),
    ],
)
def test_each_host_runs_as_an_installed_entry_point(host: str, script: str) -> None:
    """undecat-<host>, python -m undecat.runners.<host> and runners/<host>.py are one runner."""
    assert _run([str(BIN / script), "--version"]).stdout.startswith("undecat ")
    for argv in (
        [str(BIN / script)],
        [sys.executable, "-m", f"undecat.runners.{host}"],
        [sys.executable, str(ROOT / "runners" / f"{host}.py")],
    ):
        refused = _run([*argv, "no_such_job"])
        assert refused.returncode == 2, (argv, refused.stderr)
        assert f"unknown job 'no_such_job' for {host}" in refused.stderr


def test_undecat_version_is_the_installed_one() -> None:
    """`undecat --version` prints the installed distribution's version."""
    from importlib.metadata import version  # noqa: PLC0415

    result = _run([str(BIN / "undecat"), "--version"])
    assert result.stdout.strip() == f"undecat {version('undecat')}"


# --- migrate: lock timeout and retries -----------------------------------------------------


def _with_extra(tmp_path: Path, name: str, sql: str) -> Path:
    """A copy of our migrations folder with one more staging file."""
    root = tmp_path / "sql"
    shutil.copytree(ROOT / "sql", root)
    (root / "staging" / name).write_text(sql, encoding="utf-8")
    return root


def test_a_long_read_makes_migrate_give_up_instead_of_blocking_jobs(
    pg_server: PgServer, tmp_path: Path
) -> None:
    """A held table lock: migrate waits lock_timeout per try, retries, then stops clearly.

    While it waits, other sessions' reads of the table are never stuck behind it for long.
    """
    name = pg_server.create_database("t_lock")
    dsn = pg_server.dsn_for(name)
    try:
        apply_migrations(Secret(dsn), "staging")
        root = _with_extra(
            tmp_path, "0099_add_column.sql", "ALTER TABLE raw_products ADD COLUMN probe INT;\n"
        )
        pauses: list[float] = []
        worst = 0.0
        with psycopg.connect(dsn) as reader:
            reader.execute("SELECT count(*) FROM raw_products")  # holds ACCESS SHARE
            done = threading.Event()

            def job_reads() -> None:
                nonlocal worst
                with psycopg.connect(dsn, autocommit=True) as job:
                    while not done.is_set():
                        began = time.monotonic()
                        job.execute("SELECT count(*) FROM raw_products")
                        worst = max(worst, time.monotonic() - began)
                        time.sleep(0.02)

            thread = threading.Thread(target=job_reads)
            thread.start()
            try:
                with pytest.raises(MigrationError, match=r"lock_timeout 0\.3 s, 3 attempts"):
                    apply_migrations(
                        Secret(dsn), "staging", root, lock_timeout=0.3, attempts=3,
                        sleep=pauses.append,
                    )  # fmt: skip
            finally:
                done.set()
                thread.join()
        assert pauses == [2.0, 4.0]  # 2, 4, 8 ... s between tries (at most 30)
        assert worst < 2.0  # a job's read waited at most about one lock_timeout
        with psycopg.connect(dsn) as conn:
            assert not conn.execute(
                "SELECT 1 FROM schema_migrations WHERE filename = '0099_add_column.sql'"
            ).fetchone()
        # The reader gone, the same run goes through.
        assert apply_migrations(Secret(dsn), "staging", root, lock_timeout=0.3) == [
            "0099_add_column.sql"
        ]
    finally:
        pg_server.drop_database(name)


def test_migrate_retries_until_the_lock_is_free(pg_server: PgServer, tmp_path: Path) -> None:
    """A lock released between tries: the next try applies the file."""
    name = pg_server.create_database("t_lock2")
    dsn = pg_server.dsn_for(name)
    try:
        apply_migrations(Secret(dsn), "staging")
        root = _with_extra(tmp_path, "0099_add.sql", "ALTER TABLE raw_products ADD COLUMN p INT;\n")
        reader = psycopg.connect(dsn)
        reader.execute("SELECT count(*) FROM raw_products")
        pauses: list[float] = []

        def pause(seconds: float) -> None:
            pauses.append(seconds)
            reader.close()  # the long read ends while migrate waits

        applied = apply_migrations(
            Secret(dsn), "staging", root, lock_timeout=0.2, attempts=3, sleep=pause
        )
        assert applied == ["0099_add.sql"]
        assert len(pauses) == 1
    finally:
        pg_server.drop_database(name)


# --- migrate: concurrent indexes outside a transaction -------------------------------------


def test_a_concurrent_index_file_is_rerun_after_a_failure(
    pg_server: PgServer, tmp_path: Path
) -> None:
    """A no-transaction file that failed is not recorded; the INVALID index it left is rebuilt."""
    name = pg_server.create_database("t_cic")
    dsn = pg_server.dsn_for(name)
    try:
        apply_migrations(Secret(dsn), "staging")
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE probe (x INT)")
            conn.execute("INSERT INTO probe VALUES (1), (1)")
        root = _with_extra(
            tmp_path,
            "0099_probe_index.sql",
            "-- undecat: no-transaction\n"
            "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS idx_probe_x ON probe (x);\n",
        )
        with pytest.raises(MigrationError, match=r"0099_probe_index\.sql failed"):
            apply_migrations(Secret(dsn), "staging", root)
        with psycopg.connect(dsn, autocommit=True) as conn:
            (valid,) = conn.execute(
                "SELECT indisvalid FROM pg_index WHERE indexrelid = 'idx_probe_x'::regclass"
            ).fetchone() or (None,)
            assert valid is False  # what a failed concurrent build leaves behind
            conn.execute("DELETE FROM probe")
        assert apply_migrations(Secret(dsn), "staging", root) == ["0099_probe_index.sql"]
        with psycopg.connect(dsn, autocommit=True) as conn:
            (valid,) = conn.execute(
                "SELECT indisvalid FROM pg_index WHERE indexrelid = 'idx_probe_x'::regclass"
            ).fetchone() or (None,)
            assert valid is True
            assert conn.execute(
                "SELECT 1 FROM schema_migrations WHERE filename = '0099_probe_index.sql'"
            ).fetchone()
    finally:
        pg_server.drop_database(name)


def test_a_no_transaction_file_must_be_rerunnable(tmp_path: Path) -> None:
    """A concurrent index without IF NOT EXISTS is refused before anything runs."""
    root = _with_extra(
        tmp_path,
        "0099_bad.sql",
        "-- undecat: no-transaction\nCREATE INDEX CONCURRENTLY idx_bad ON raw_products (id);\n",
    )
    with pytest.raises(MigrationError, match="IF NOT EXISTS"):
        apply_migrations(Secret("postgresql://nobody@127.0.0.1:9/x"), "staging", root)


def test_our_concurrent_index_is_valid(staging_dsn: str) -> None:
    """0011's index was built concurrently and is valid; 0011 is recorded once."""
    with psycopg.connect(staging_dsn) as conn:
        row = conn.execute(
            "SELECT indisvalid FROM pg_index"
            " WHERE indexrelid = 'idx_raw_products_delisted_objects'::regclass"
        ).fetchone()
        assert row == (True,)


# --- the previous release against the new schema -------------------------------------------


def _previous_release(tmp_path: Path) -> Path:
    """The previous release's source tree, from git (offline: the clone has the history)."""
    archive = subprocess.run(
        [
            "git",
            "-C",
            str(ROOT),
            "archive",
            "--format=tar",
            PREVIOUS_RELEASE,
            "src",
            "runners",
            "sql",
        ],
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout
    target = tmp_path / "previous"
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return target


def test_the_previous_release_runs_against_the_migrated_schema(  # noqa: PLR0917
    pg_server: PgServer,
    tmp_path: Path,
    origin: Origin,
    proxy_server: ProxyServer,
    origin_ca: Path,
    s3_bucket: S3Bucket,
) -> None:
    """Migrate an old-release database to this release; the old release's jobs still work."""
    old = _previous_release(tmp_path)
    name = pg_server.create_database("t_prev")
    dsn = pg_server.dsn_for(name)
    try:
        # The old release was deployed: its migrations. Then this release migrates (upgrade
        # step 1) while the hosts still run the old code.
        apply_migrations(Secret(dsn), "staging", old / "sql")
        assert apply_migrations(Secret(dsn), "staging"), "this release adds no migration?"

        env = {
            "PYTHONPATH": str(old / "src"),
            "STAGING_DB_URL": dsn,
            "PROXY_URL": proxy_server.url,
            "PROXY_CA_BUNDLE": str(origin_ca),
            "ALLOWED_PHOTO_HOSTS": "localhost",
            "DOWNLOAD_DELAY_MIN": "0",
            "DOWNLOAD_DELAY_MAX": "0",
            "DATA_DIR": str(tmp_path / "data"),
            **s3_bucket.env(),
        }
        where = _run([sys.executable, "-c", "import undecat; print(undecat.__file__)"], **env)
        assert where.stdout.strip().startswith(str(old)), where.stdout + where.stderr

        def old_job(host: str, *argv: str) -> None:
            result = _run([sys.executable, str(old / "runners" / f"{host}.py"), *argv], **env)
            assert result.returncode == 0, (host, argv, result.stderr[-2000:])

        export = tmp_path / "zara.jsonl"
        export.write_text("\n".join(json.dumps(zara_item(n)) for n in (1, 2, 3)) + "\n")
        old_job("apify", "apify_zara", "--from-file", str(export))

        photo = rgb_jpeg()
        origin.serve("/p/1.jpg", Reply(body=photo, headers={"Content-Type": "image/jpeg"}))
        with Database(Secret(dsn), max_size=1) as db:
            PostgresCatalogStore(db).upsert_products(
                [draft(9, external_id="9", original_image_urls=(origin.url("/p/1.jpg"),))],
                datetime.now(UTC),
            )
        old_job("photo_downloader", "download_pending")
        old_job("collage", "process_new")
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("UPDATE raw_products SET index_scope = 'pilot' WHERE external_id = '9'")
        old_job("ximilar_sync", "ximilar_sync")
        for host in ("photo_downloader", "collage"):
            old_job(host, "retry_failed")
            old_job(host, "cleanup_temp")
        with psycopg.connect(dsn) as conn:
            row = conn.execute(
                "SELECT image_status, ximilar_status FROM raw_products WHERE external_id = '9'"
            ).fetchone()
            runs = conn.execute("SELECT count(*) FROM scraper_logs WHERE status <> 'failed'")
            (succeeded,) = runs.fetchone() or (0,)
        assert row == ("collage_ready", "pending")  # a dry run sends nothing, marks nothing
        assert (tmp_path / "data" / "ximilar-dry-run.jsonl").stat().st_size > 0
        assert succeeded == 8  # (download_pending is partial: the brand CDN is not allowed)
    finally:
        pg_server.drop_database(name)
