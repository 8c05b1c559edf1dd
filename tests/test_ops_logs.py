"""Logs: JSON lines off a terminal, human lines on one, secrets scrubbed; progress on a tty."""

from __future__ import annotations

import io
import json
import logging
import os
import pty
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.fakes import MemoryQueue, product
from tests.fix_db import PgServer
from undecat.adapters.logs import setup_logging
from undecat.adapters.postgres import Database
from undecat.adapters.progress import ProgressQueue
from undecat.domain.stages import PhotosStored, Stage

ROOT = Path(__file__).resolve().parents[1]
SECRET = "hunter2-s3cr3t-value"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put the root logger back as it was after the test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _explode() -> None:
    raise RuntimeError(f"boom with {SECRET}")


@pytest.mark.usefixtures("restore_logging")
def test_json_lines_parse_and_hold_no_secret() -> None:
    """Off a terminal every record is one JSON object; secrets in messages and tracebacks go."""
    out = io.StringIO()
    setup_logging((SECRET,), stream=out)
    log = logging.getLogger("undecat.test")
    log.info("connecting to %s", f"postgresql://app:{SECRET}@127.0.0.1/db")
    log.warning("token %s refused", SECRET, extra={"job": "process_new", "batch": 3})
    try:
        _explode()
    except RuntimeError:
        log.exception("failed")
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    records = [json.loads(line) for line in lines]
    assert [r["level"] for r in records] == ["info", "warning", "error"]
    assert records[0]["message"] == "connecting to postgresql://app:***@127.0.0.1/db"
    assert (records[1]["job"], records[1]["batch"]) == ("process_new", 3)
    assert "RuntimeError" in records[2]["exception"]
    assert all(r["logger"] == "undecat.test" and r["time"].endswith("+00:00") for r in records)
    assert SECRET not in out.getvalue()


@pytest.mark.usefixtures("restore_logging")
def test_human_lines_are_scrubbed_too() -> None:
    """Forced to the terminal format, lines are readable and still free of secrets."""
    out = io.StringIO()
    setup_logging((SECRET,), stream=out, json_lines=False)
    logging.getLogger("undecat.test").info("proxy http://u:%s@127.0.0.1:3128 ok", SECRET)
    line = out.getvalue().strip()
    assert "INFO" in line
    assert "undecat.test: proxy http://u:***@127.0.0.1:3128 ok" in line
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


def _runner_env(dsn: str, tmp_path: Path) -> dict[str, str]:
    base = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    return {**base, "STAGING_DB_URL": dsn, "DATA_DIR": str(tmp_path)}


def test_a_runner_logs_json_lines_to_a_pipe(
    staging_db: Database, staging_dsn: str, pg_server: PgServer, tmp_path: Path
) -> None:
    """The runner under systemd (stdout a pipe) prints JSON lines with no password in them."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "runners" / "collage.py"), "retry_failed"],
        env=_runner_env(staging_dsn, tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert any("collage.retry_failed: started" in r["message"] for r in records)
    assert pg_server.password not in done.stdout + done.stderr


def test_a_runner_logs_human_lines_on_a_terminal(
    staging_db: Database, staging_dsn: str, tmp_path: Path
) -> None:
    """With stdout a terminal (a pty) the same runner prints readable lines, not JSON."""
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "runners" / "collage.py"), "retry_failed"],
            env=_runner_env(staging_dsn, tmp_path),
            stdout=follower,
            stderr=subprocess.DEVNULL,
        )
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal closed: the runner has exited
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert proc.wait(timeout=120) == 0
    finally:
        os.close(leader)
    text = b"".join(chunks).decode()
    assert "collage.retry_failed: started" in text
    assert not any(line.lstrip().startswith("{") for line in text.splitlines())


def test_progress_bar_shows_rate_and_eta() -> None:
    """A wrapped queue draws tqdm's bar: count of total, rate and remaining time."""
    products = [product(n) for n in range(1, 6)]
    inner = MemoryQueue(Stage.DOWNLOAD, products)
    out = io.StringIO()
    queue = ProgressQueue(inner, lambda: len(products), stream=out)
    for claim in queue.claim("me", 10, timedelta(minutes=5)):
        queue.complete(claim, PhotosStored(image_urls=("https://s3.test/x.jpg",)))
    assert queue.claim("me", 10, timedelta(minutes=5)) == []
    queue.close()
    drawn = out.getvalue()
    assert "5/5" in drawn
    assert "product/s" in drawn
    assert "<" in drawn  # elapsed<remaining
    assert all(inner.status(p.id) == "uploaded" for p in products)
