"""apify_<brand> end to end: runner -> bootstrap -> real apify-client -> fake API -> PostgreSQL."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from psycopg import conninfo

from tests.fake_apify import TOKEN, FakeApify, RunPlan
from tests.strategies import zara_item
from undecat.adapters.postgres import Database
from undecat.bootstrap import bootstrap
from undecat.cli import run_host
from undecat.config import Config
from undecat.domain.models import RunResult
from undecat.redact import Secret

TASK = "z1psVOTyIKFdU5N9n"
STATUS_COLUMNS = (
    "image_status",
    "image_urls",
    "collage_url",
    "ximilar_status",
    "ximilar_synced_urls",
    "sync_status",
    "error_message",
    "download_attempts",
    "updated_at",
    "delisted_at",
)


def config(api: FakeApify, dsn: str, **changes: Any) -> Config:
    return Config(
        staging_db_url=Secret(dsn),
        apify_token=Secret(TOKEN),
        apify_api_url=api.url,
        apify_tasks={"zara": TASK},
        **changes,
    )


def collect(api: FakeApify, dsn: str, *argv: str) -> RunResult:
    with bootstrap(config(api, dsn), argv=argv) as jobs:
        return jobs.job("apify", "apify_zara").run()


def products(db: Database) -> dict[str, dict[str, Any]]:
    with db.transaction("read") as cur:
        cur.execute("SELECT * FROM raw_products ORDER BY external_id")
        return {row["external_id"]: row for row in cur.fetchall()}


def last_log(db: Database) -> dict[str, Any]:
    with db.transaction("read") as cur:
        cur.execute("SELECT * FROM scraper_logs ORDER BY id DESC LIMIT 1")
        row = cur.fetchone()
    assert row is not None
    return row


def advance_all(db: Database) -> None:
    """Put every product where the later stages would leave it."""
    with db.transaction("advance") as cur:
        cur.execute(
            "UPDATE raw_products SET image_status = 'collage_ready',"
            " image_urls = original_image_urls, collage_url = 'https://cdn/c.jpg',"
            " ximilar_status = 'synced', ximilar_synced_urls = original_image_urls,"
            " sync_status = 'synced'"
        )


def test_happy_path_over_pages_writes_products_and_log(
    fake_apify: FakeApify, staging_db: Database, staging_dsn: str
) -> None:
    """2,300 items over three pages are stored, and scraper_logs holds the counts and run id."""
    fake_apify.plan(TASK, RunPlan(count=2300, item_at=lambda n: zara_item(n + 1)))
    result = collect(fake_apify, staging_dsn)
    assert (result.status, result.records_fetched, result.records_new) == ("success", 2300, 2300)
    stored = products(staging_db)
    assert len(stored) == 2300
    assert stored["1"]["price"] is not None
    assert stored["1"]["image_status"] == "pending"
    log = last_log(staging_db)
    assert log["scraper_name"] == "apify_zara"
    assert (log["status"], log["records_fetched"], log["records_new"]) == ("success", 2300, 2300)
    assert log["run_id"] == "run00001"
    assert log["metadata"]["apify_run_id"] == "run00001"
    assert log["metadata"]["apify_status"] == "SUCCEEDED"


def test_bad_items_are_rejected_alone(
    fake_apify: FakeApify, staging_db: Database, staging_dsn: str
) -> None:
    """Every kind of bad item is counted with a reason; the good ones, odd text included, land."""
    good = [
        zara_item(1),
        zara_item(2, name="فستان مطرز بأكمام طويلة"),
        zara_item(3, name="سترة 👗✨"),
        zara_item(4, name="NUL\x00 inside", description="a\x00b", extra={"k": "\x00"}),
        zara_item(
            5,
            colorsSizesImagesJSON=[
                {"xmedia": ["javascript:alert(1)", "/rel.jpg", "https://static.zara.net/5.jpg"]}
            ],
        ),
    ]
    bad = [
        {"name": "no id"},
        zara_item(11, name=None),
        zara_item(12, price="699.00"),
        zara_item(13, price=-5),
        zara_item(14, price=10**15),
        zara_item(15, colorsSizesImagesJSON="nope"),
        zara_item(16, colorsSizesImagesJSON=[{"xmedia": ["javascript:alert(1)", "/x.jpg"]}]),
        zara_item(17, description="x" * (5 * 1024 * 1024)),
        zara_item(1, name="the same id again"),
    ]
    fake_apify.plan(TASK, RunPlan(items=[*good[:2], *bad, *good[2:]]))
    result = collect(fake_apify, staging_dsn)
    assert result.status == "partial"
    assert (result.records_fetched, result.records_new, result.records_errors) == (14, 5, 9)
    stored = products(staging_db)
    assert sorted(stored) == ["1", "2", "3", "4", "5"]
    assert stored["1"]["name"] == "ZW COLLECTION ASYMMETRIC BLAZER"
    assert stored["2"]["name"] == "فستان مطرز بأكمام طويلة"
    assert stored["3"]["name"] == "سترة 👗✨"
    assert stored["4"]["name"] == "NUL inside"
    assert stored["4"]["raw_data"]["extra"] == {"k": ""}
    assert stored["5"]["original_image_urls"] == ["https://static.zara.net/5.jpg"]
    log = last_log(staging_db)
    assert log["records_errors"] == 9
    reasons = " | ".join(r["reason"] for r in log["metadata"]["rejected"])
    for expected in (
        "no id",
        "no name",
        "text",
        "negative",
        "largest",
        "colorsSizesImagesJSON",
        "no usable photo",
        "cap",
        "earlier in this run",
    ):
        assert expected in reasons


def test_unchanged_rerun_moves_no_status_and_changed_photos_reset_one(
    fake_apify: FakeApify, staging_db: Database, staging_dsn: str
) -> None:
    """Re-collecting the same dataset moves nothing; new photos of one product reset only it."""
    dataset = [zara_item(n) for n in range(1, 6)]
    fake_apify.plan(TASK, RunPlan(items=dataset))
    collect(fake_apify, staging_dsn)
    advance_all(staging_db)
    before = products(staging_db)

    again = collect(fake_apify, staging_dsn)
    after = products(staging_db)
    assert (again.records_new, again.records_updated) == (0, 0)
    assert again.metadata["unchanged"] == 5
    for key, row in after.items():
        assert {c: row[c] for c in STATUS_COLUMNS} == {c: before[key][c] for c in STATUS_COLUMNS}
        assert row["scraped_at"] > before[key]["scraped_at"]

    changed = [dict(item) for item in dataset]
    changed[2] = zara_item(3, colorsSizesImagesJSON=[{"xmedia": ["https://static.zara.net/n.jpg"]}])
    fake_apify.plan(TASK, RunPlan(items=changed))
    third = collect(fake_apify, staging_dsn)
    final = products(staging_db)
    assert (third.records_updated, third.metadata["photos_changed"]) == (1, 1)
    assert final["3"]["image_status"] == "pending"
    assert final["3"]["image_urls"] is None
    assert final["3"]["collage_url"] is None
    assert final["3"]["ximilar_status"] == "pending"
    for key in ("1", "2", "4", "5"):
        assert {c: final[key][c] for c in STATUS_COLUMNS} == {
            c: before[key][c] for c in STATUS_COLUMNS
        }


@pytest.mark.parametrize("final", ["FAILED", "TIMED-OUT", "ABORTED"])
def test_failed_runs_store_items_delist_nothing_and_exit_non_zero(
    fake_apify: FakeApify,
    staging_db: Database,
    staging_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    final: str,
) -> None:
    """A run ending FAILED/TIMED-OUT/ABORTED keeps its items, delists nothing, exits 1."""
    fake_apify.plan(TASK, RunPlan(items=[zara_item(n) for n in range(1, 5)]))
    collect(fake_apify, staging_dsn)
    fake_apify.plan(TASK, RunPlan(items=[zara_item(1), zara_item(9)], final_status=final))
    _environment(monkeypatch, fake_apify, staging_dsn)
    assert run_host("apify", ["apify_zara"]) == 1
    stored = products(staging_db)
    assert "9" in stored
    assert all(row["delisted_at"] is None for row in stored.values())
    log = last_log(staging_db)
    assert log["status"] == "failed"
    assert log["run_id"] == "run00002"
    assert log["metadata"]["apify_status"] == final
    assert final in log["metadata"]["delisting_skipped"]
    assert f"ended {final}" in log["error_message"]
    assert log["records_new"] == 1


def test_delisting_after_complete_run_and_undelisting_on_return(
    fake_apify: FakeApify, staging_db: Database, staging_dsn: str
) -> None:
    """A complete run delists what it lacks; too small a run delists nothing; returns undelist."""
    fake_apify.plan(TASK, RunPlan(items=[zara_item(n) for n in range(1, 11)]))
    collect(fake_apify, staging_dsn)
    fake_apify.plan(TASK, RunPlan(items=[zara_item(n) for n in range(1, 9)]))
    complete = collect(fake_apify, staging_dsn)
    assert complete.metadata["delisted"] == 2
    assert {k for k, r in products(staging_db).items() if r["delisted_at"]} == {"9", "10"}

    fake_apify.plan(TASK, RunPlan(items=[zara_item(n) for n in range(1, 4)]))
    small = collect(fake_apify, staging_dsn)
    assert small.metadata["delisted"] == 0
    assert (
        "fewer than half of the brand's 8 active"
        in last_log(staging_db)["metadata"]["delisting_skipped"]
    )
    assert {k for k, r in products(staging_db).items() if r["delisted_at"]} == {"9", "10"}

    fake_apify.plan(TASK, RunPlan(items=[zara_item(n) for n in range(1, 11)]))
    back = collect(fake_apify, staging_dsn)
    assert back.records_updated == 2
    assert all(r["delisted_at"] is None for r in products(staging_db).values())


def test_invalid_token_writes_nothing_and_exits_non_zero(
    fake_apify: FakeApify,
    staging_db: Database,
    staging_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A 401 from Apify stores no product, logs the run failed naming APIFY_TOKEN, exits 2."""
    fake_apify.plan(TASK, RunPlan(items=[zara_item(1)]))
    _environment(monkeypatch, fake_apify, staging_dsn, APIFY_TOKEN="apify_api_revoked_0000")
    assert run_host("apify", ["apify_zara"]) == 2
    assert products(staging_db) == {}
    log = last_log(staging_db)
    assert log["status"] == "failed"
    assert "refused the token" in log["error_message"]
    assert "APIFY_TOKEN" in log["error_message"]
    assert "revoked" not in log["error_message"]
    assert "revoked" not in capsys.readouterr().err


@pytest.mark.slow
def test_run_that_outlives_our_wait_is_aborted_and_logged_failed(
    fake_apify: FakeApify,
    staging_db: Database,
    staging_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With APIFY_WAIT_SECONDS=1 a run that never finishes is aborted; its items are kept."""
    fake_apify.plan(TASK, RunPlan(items=[zara_item(1), zara_item(2)], polls=-1))
    _environment(monkeypatch, fake_apify, staging_dsn, APIFY_WAIT_SECONDS="1")
    assert run_host("apify", ["apify_zara"]) == 1
    assert fake_apify.count("POST", "/actor-runs/run00001/abort") == 1
    assert sorted(products(staging_db)) == ["1", "2"]
    log = last_log(staging_db)
    assert log["status"] == "failed"
    assert log["metadata"]["apify_status"] == "RUNNING"
    assert "RUNNING" in log["metadata"]["delisting_skipped"]


def test_from_file_reads_an_export_without_apify(
    fake_apify: FakeApify,
    staging_db: Database,
    staging_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """--from-file stores a JSON-lines export with no Apify call and no token needed."""
    export = tmp_path / "zara.jsonl"
    export.write_text("\n".join(json.dumps(zara_item(n)) for n in range(1, 4)), encoding="utf-8")
    _environment(monkeypatch, fake_apify, staging_dsn, APIFY_TOKEN="")
    assert run_host("apify", ["apify_zara", "--from-file", str(export)]) == 0
    assert sorted(products(staging_db)) == ["1", "2", "3"]
    assert fake_apify.requests == []
    log = last_log(staging_db)
    assert log["metadata"]["source"] == "file"
    assert log["run_id"] is None


def test_usage_and_configuration_errors_exit_2(
    fake_apify: FakeApify,
    staging_db: Database,
    staging_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A bad option, a missing export, a missing token or task id stop before any run log."""
    _environment(monkeypatch, fake_apify, staging_dsn)
    assert run_host("apify", ["apify_zara", "--frm-file", "x"]) == 2
    assert "usage:" in capsys.readouterr().err
    assert run_host("apify", ["apify_zara", "--from-file", "/nonexistent/none.json"]) == 2
    assert "no such file" in capsys.readouterr().err
    assert run_host("apify", ["apify_bershka"]) == 2
    assert "APIFY_TASK_BERSHKA" in capsys.readouterr().err
    monkeypatch.setenv("APIFY_TOKEN", "")
    assert run_host("apify", ["apify_zara"]) == 2
    assert "APIFY_TOKEN is not set" in capsys.readouterr().err
    with staging_db.transaction("count") as cur:
        cur.execute("SELECT count(*) AS n FROM scraper_logs")
        assert cur.fetchone() == {"n": 0}


def _environment(monkeypatch: pytest.MonkeyPatch, api: FakeApify, dsn: str, **extra: str) -> None:
    for name in list(os.environ):
        if name.startswith("APIFY_"):
            monkeypatch.delenv(name)
    values = {
        "STAGING_DB_URL": _url(dsn),
        "APIFY_TOKEN": TOKEN,
        "APIFY_API_URL": api.url,
        "APIFY_TASK_ZARA": TASK,
        **extra,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def _url(dsn: str) -> str:
    """The fixture's conninfo as the postgresql:// URL that STAGING_DB_URL must be."""
    info = conninfo.conninfo_to_dict(dsn)
    password = quote(str(info.get("password") or ""), safe="")
    auth = f"{info.get('user', 'postgres')}:{password}@"
    where = f"{info.get('host', '127.0.0.1')}:{info.get('port', 5432)}/{info['dbname']}"
    return f"postgresql://{auth}{where}"


def test_the_runs_end_reason_is_kept_on_the_run_log(
    fake_apify: FakeApify, staging_db: Database, staging_dsn: str
) -> None:
    """Apify's status message and exit code of a failed run land in scraper_logs."""
    message = "The Actor run failed: out of memory (4096 MB)"
    fake_apify.plan(
        TASK,
        RunPlan(items=[zara_item(1)], final_status="FAILED", status_message=message, exit_code=137),
    )
    result = collect(fake_apify, staging_dsn)
    assert result.status == "failed"
    log = last_log(staging_db)
    assert log["metadata"]["end_reason"] == f"{message}; exit code 137"
    assert message in log["error_message"]
    fake_apify.plan(TASK, RunPlan(items=[zara_item(1)], status_message="Finished: 1 item"))
    collect(fake_apify, staging_dsn)
    assert last_log(staging_db)["metadata"]["end_reason"] == "Finished: 1 item"
