"""The README's first command: `undecat demo` runs the whole pipeline on embedded defaults."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
from PIL import Image
from psycopg.rows import dict_row

from undecat.adapters.postgres.embedded import EmbeddedPostgres
from undecat.demo_zara import STORES


def demo(data_dir: Path, products: int) -> subprocess.CompletedProcess[str]:
    """Run `undecat demo` as a fresh process with no environment but PATH and HOME."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(data_dir)}
    argv = ["demo", "--data-dir", str(data_dir), "--products", str(products)]
    return subprocess.run(
        [sys.executable, "-m", "undecat.cli", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def rows(server: EmbeddedPostgres, database: str, sql: str) -> list[dict[str, Any]]:
    """Rows of one query on one of the demo's databases."""
    with psycopg.connect(server.dsn_for(database), row_factory=dict_row) as conn:
        return conn.execute(sql.encode()).fetchall()


def test_demo_runs_the_whole_cycle_and_a_second_run_does_nothing(tmp_path: Path) -> None:
    """With no environment the demo fills production; run again, it does no work and says so."""
    first = demo(tmp_path, 5)
    assert first.returncode == 0, first.stdout + first.stderr
    for job in (
        "apify_zara",
        "download_pending",
        "process_new",
        "ximilar_sync",
        "stores_refresh",
        "availability_poll",
        "sync_to_production",
    ):
        assert any(job in line and "success" in line for line in first.stdout.splitlines()), job
    bucket = tmp_path / "objects" / "unde-images"
    collages = sorted((bucket / "collages" / "zara").glob("*.jpg"))
    assert len(collages) == 5
    with Image.open(collages[1]) as collage:  # the second product has two colours x two photos
        assert collage.size == (4 * 480, 720)
    assert len(list((bucket / "originals" / "zara").glob("*/*.jpg"))) == 5 * 2 + 2 * 2
    requests = [
        json.loads(line) for line in (tmp_path / "ximilar-dry-run.jsonl").read_text().splitlines()
    ]
    assert sum(len(r["records"]) for r in requests) == 10  # two photos per product
    # The funnel, and where the collages and the report are.
    assert "funnel" in first.stdout
    assert f"collages: {bucket / 'collages'}" in first.stdout
    report = tmp_path / "report.html"
    assert f"report:   {report}" in first.stdout
    page = report.read_text(encoding="utf-8")
    assert "<svg" in page
    assert page.count("data:image/jpeg;base64,") >= 5  # the newest collages as thumbnails
    assert "nothing changed" not in first.stdout

    second = demo(tmp_path, 5)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "nothing changed since the last run: no work done" in second.stdout
    assert "availability_poll  not due" in second.stdout
    assert "stores_refresh     not due" in second.stdout
    assert any("ximilar_sync" in line and "not due" in line for line in second.stdout.splitlines())
    for job in ("download_pending", "process_new", "sync_to_production"):
        (line,) = [line for line in second.stdout.splitlines() if f" {job} " in line]
        assert "fetched=0 new=0 updated=0 errors=0" in line, line
    assert len(list(bucket.rglob("*.jpg"))) == 5 + 5 * 2 + 2 * 2

    with EmbeddedPostgres(tmp_path / "postgres") as server:
        staging = rows(server, "undecat_staging", "SELECT * FROM raw_products ORDER BY id")
        products = rows(server, "undecat_production", "SELECT * FROM catalog.products")
        stores = rows(server, "undecat_production", "SELECT * FROM catalog.stores")
        stock = rows(server, "undecat_production", "SELECT * FROM catalog.availability")
    assert len(staging) == 5
    assert {p["sync_status"] for p in staging} == {"synced"}
    assert {p["image_status"] for p in staging} == {"collage_ready"}
    assert sorted(p["external_id"] for p in products) == sorted(p["external_id"] for p in staging)
    assert all(p["is_active"] and p["collage_url"] for p in products)
    assert sorted(s["store_id"] for s in stores) == sorted(s for s, _, _ in STORES)
    # One row per product and store (two colours of a product merge into one row's sizes).
    assert len(stock) == 5 * len(STORES)
