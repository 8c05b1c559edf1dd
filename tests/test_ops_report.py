"""``undecat status`` and ``status --html``: the report people look at, checked in Chromium.

The staging database is filled with products in every state, availability rows, stale and
live leases, runs over several days and errors; collages are real JPEGs in the S3 bucket.
The text report is checked for its numbers; the HTML page is opened in a real headless
Chromium (Debian's ``chromium``) that may resolve no host name, screenshotted, and checked
for its charts and thumbnails (by colour) and for console errors.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg
import pytest
from PIL import Image

from tests.fix_s3 import S3Bucket
from undecat import cli
from undecat.adapters.postgres import Database
from undecat.ops.render import COLOURS

DOCS = Path(__file__).resolve().parents[1] / "docs"
#: A collage colour no chart uses: its pixels in the screenshot are the thumbnails.
THUMB_RGB = (230, 20, 200)

# (brand, how many, image, ximilar, sync, error message or None)
PRODUCTS = [
    ("zara", 30, "collage_ready", "synced", "synced", None),
    ("zara", 8, "collage_ready", "partial", "pending", None),
    ("zara", 6, "uploaded", "pending", "pending", None),
    ("zara", 5, "pending", "pending", "pending", None),
    ("zara", 3, "error", "pending", "pending", "download: 404 Not Found for https://x/1.jpg"),
    ("bershka", 12, "collage_ready", "synced", "synced", None),
    ("bershka", 9, "uploaded", "pending", "pending", None),
    ("bershka", 4, "collage_ready", "error", "skipped", "ximilar: record 77 refused"),
    ("oysho", 7, "pending", "pending", "pending", None),
    ("oysho", 2, "error", "pending", "pending", "download: 404 Not Found for https://x/9.jpg"),
]


def _collage(n: int) -> bytes:
    image = Image.new("RGB", (300, 450), THUMB_RGB)
    image.paste((255, 255, 255), (20 + (n % 10) * 8, 20, 160 + (n % 5) * 20, 200 + (n % 3) * 60))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def seed(dsn: str, bucket: S3Bucket) -> int:
    """Products in every state, availability today, leases, runs; return the collages stored."""
    collages = 0
    with psycopg.connect(dsn, autocommit=True) as conn:
        n = 0
        for brand, count, image, ximilar, sync, error in PRODUCTS:
            for _ in range(count):
                n += 1
                collage = None
                if image == "collage_ready" and n % 7 == 0:
                    key = f"collages/{brand}/{n}.jpg"
                    bucket.client.put_object(
                        Bucket=bucket.bucket, Key=key, Body=_collage(n), ContentType="image/jpeg"
                    )
                    collage = f"{bucket.endpoint}/{bucket.bucket}/{key}"
                    collages += 1
                conn.execute(
                    "INSERT INTO raw_products (source, external_id, brand, name, scraped_at,"
                    " image_status, ximilar_status, sync_status, collage_url, error_message,"
                    " index_scope, download_attempts, updated_at)"
                    " VALUES (%s, %s, %s, %s, now(), %s, %s, %s, %s, %s, 'pilot', %s,"
                    " now() - make_interval(mins => %s))",
                    (
                        brand,
                        f"{brand}-{n}",
                        brand,
                        f"{brand.title()} item {n}",
                        image,
                        ximilar,
                        sync,
                        collage,
                        error,
                        3 if image == "error" else 0,
                        1000 - n,
                    ),
                )
        # Availability today for 20 zara products, yesterday's for 5 more (not counted).
        for i, day in [(i, 0) for i in range(1, 21)] + [(i, 1) for i in range(21, 26)]:
            conn.execute(
                "INSERT INTO raw_availability (brand, store_id, product_id, sizes_in_stock,"
                " fetched_at)"
                " VALUES ('zara', 101, %s, '[\"M\"]', now() - make_interval(days => %s))",
                (f"zara-{i}", day),
            )
        # Two live collage leases and one stale download lease.
        conn.execute(
            "UPDATE raw_products SET collage_owner = 'c1', collage_lease_until = now() + interval"
            " '10 min' WHERE id IN (SELECT id FROM raw_products WHERE image_status = 'uploaded'"
            " ORDER BY id LIMIT 2)"
        )
        conn.execute(
            "UPDATE raw_products SET download_owner = 'dead', download_lease_until = now() -"
            " interval '2 hours' WHERE id = (SELECT min(id) FROM raw_products"
            " WHERE image_status = 'pending')"
        )
        for day in range(6):
            for hour in range(0, 24, 3):
                status = "failed" if (day, hour) in ((1, 3), (4, 9), (4, 12)) else "success"
                error = "OutageError: proxy 407" if status == "failed" else None
                conn.execute(
                    "INSERT INTO scraper_logs (scraper_name, status, started_at, completed_at,"
                    " duration_seconds, records_fetched, records_errors, error_message)"
                    " VALUES ('download_pending', %s, now() - make_interval(days => %s, hours"
                    " => %s), now(), 90, 40, 2, %s)",
                    (status, day, hour, error),
                )
        conn.execute(
            "INSERT INTO scraper_logs (scraper_name, status, started_at, completed_at,"
            " duration_seconds, records_fetched, records_errors)"
            " VALUES ('process_new', 'partial', now() - interval '5 min', now(), 40, 12, 1),"
            " ('apify_zara', 'success', now() - interval '2 days', now(), 3600, 49, 0)"
        )
    return collages


@pytest.fixture
def report_env(
    staging_db: Database, staging_dsn: str, s3_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch
) -> int:
    """A seeded staging database and bucket, the environment pointing at them; the collages."""
    collages = seed(staging_dsn, s3_bucket)
    monkeypatch.setenv("STAGING_DB_URL", staging_dsn)
    for key, value in s3_bucket.env().items():
        monkeypatch.setenv(key, value)
    return collages


def _row(out: str, brand: str) -> list[str]:
    line = next(line for line in out.splitlines() if line.startswith(f"{brand} "))
    return line.split()


@pytest.mark.usefixtures("report_env")
def test_status_prints_funnel_work_runs_and_errors(capsys: pytest.CaptureFixture[str]) -> None:
    """The text report counts each brand's states, today's availability, leases and errors."""
    assert cli.main(["status"]) == 0
    out = capsys.readouterr().out
    # brand, products, image x4, ximilar x4, sync x4, availability today
    zara = "zara 52 5 6 38 3 14 8 30 0 22 30 0 0 38%"
    assert " ".join(_row(out, "zara")) == zara
    bershka = "bershka 25 0 9 16 0 9 0 12 4 9 12 4 0 0%"
    assert " ".join(_row(out, "bershka")) == bershka
    work = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line[:2] == "  "}
    assert work["collage"] == ["2", "0", "0"]
    assert work["download"] == ["0", "1", "5"]
    assert re.search(r"download_pending\s+\S+ \S+ success", out)
    assert re.search(r"\s+3\s+run\s+OutageError: proxy N", out)  # 407 masked as N
    assert re.search(r"\s+5\s+product\s+download: N Not Found for <url>", out)


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip(
            "Debian's chromium is not installed (apt-get install -y chromium; .ci/run does it)"
        )
    return found


def render(page: Path, screenshot: Path) -> list[str]:
    """Open ``page`` in headless Chromium with no name resolution; return its console lines."""
    with tempfile.TemporaryDirectory(prefix="undecat-chromium-") as profile:
        done = subprocess.run(
            [
                _chromium(),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--enable-logging=stderr",
                "--v=0",
                "--host-resolver-rules=MAP * ~NOTFOUND",
                "--hide-scrollbars",
                "--window-size=1280,1700",
                f"--screenshot={screenshot}",
                page.resolve().as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**os.environ, "HOME": profile},
        )
    assert screenshot.is_file(), done.stderr[-2000:]
    return [line for line in done.stderr.splitlines() if ":CONSOLE" in line]


def _pixels_near(image: Image.Image, rgb: tuple[int, int, int], tolerance: int = 12) -> int:
    colours: list[tuple[int, tuple[int, int, int]]] = image.getcolors(maxcolors=1 << 24) or []  # type: ignore[assignment]
    return sum(
        count
        for count, pixel in colours
        if all(abs(a - b) <= tolerance for a, b in zip(pixel, rgb, strict=True))
    )


def _hex(colour: str) -> tuple[int, int, int]:
    return (int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16))


def test_html_report_renders_in_chromium(
    report_env: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The page is self-contained, and Chromium draws its charts and thumbnails without errors."""
    page = tmp_path / "report.html"
    assert cli.main(["status", "--html", str(page)]) == 0
    assert f"report written to {page}" in capsys.readouterr().out
    text = page.read_text(encoding="utf-8")
    assert "<script" not in text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)  # nothing to fetch
    assert text.count('<svg class="chart funnel"') == 3
    assert '<svg class="chart runs"' in text
    assert '<svg class="chart errors"' in text
    thumbs = re.findall(r'<img class="thumb"[^>]*src="data:image/jpeg;base64,', text)
    assert report_env > 6
    assert len(thumbs) == min(report_env, 12)  # the newest collages, at most 12

    shot = tmp_path / "report.png"
    console = render(page, shot)
    assert console == [], console
    with Image.open(shot) as image:
        rgb = image.convert("RGB")
    assert rgb.width == 1280
    assert _pixels_near(rgb, THUMB_RGB) > len(thumbs) * 2000  # every thumbnail is drawn
    for state in ("collage_ready", "uploaded", "pending", "error", "partial"):
        assert _pixels_near(rgb, _hex(COLOURS[state]), tolerance=4) > 300, state
    assert len(rgb.getcolors(maxcolors=1 << 24) or []) > 50
    keep = os.environ.get("UNDECAT_REPORT_SCREENSHOT")
    if keep:  # refresh docs/report.png: UNDECAT_REPORT_SCREENSHOT=docs/report.png pytest ...
        shutil.copyfile(shot, keep)


def test_the_console_check_sees_a_blocked_fetch(tmp_path: Path) -> None:
    """The browser check is not blind: a page that tries to fetch logs a console error."""
    page = tmp_path / "bad.html"
    page.write_text(
        '<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy"'
        " content=\"default-src 'none'; img-src data:\"></head>"
        '<body><img src="https://cdn.example.invalid/x.png"></body></html>',
        encoding="utf-8",
    )
    console = render(page, tmp_path / "bad.png")
    assert any("cdn.example.invalid" in line for line in console), console


def test_docs_keep_a_screenshot_of_the_report() -> None:
    """docs/report.png is a real screenshot of the page (a PNG of the browser's width)."""
    with Image.open(DOCS / "report.png") as image:
        assert image.format == "PNG"
        assert image.width == 1280


def test_html_report_without_a_reachable_bucket_leaves_the_thumbnails_out(
    report_env: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """When the bucket cannot be opened the page is still written, without thumbnails."""
    monkeypatch.delenv("S3_ACCESS_KEY", raising=False)
    monkeypatch.delenv("S3_SECRET_KEY", raising=False)
    page = tmp_path / "report.html"
    assert cli.main(["status", "--html", str(page)]) == 0
    text = page.read_text(encoding="utf-8")
    assert '<svg class="chart runs"' in text
    assert "data:image/jpeg;base64," not in text
    assert "collage thumbnails left out" in caplog.text
