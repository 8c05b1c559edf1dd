"""The README's first command: `undecat demo` runs the pipeline on embedded defaults."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from PIL import Image


def test_demo_runs_every_stage_with_no_credentials(tmp_path: Path) -> None:
    """With no environment the demo collects, downloads, builds collages, dry-runs Ximilar."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "undecat.cli",
            "demo",
            "--data-dir",
            str(tmp_path),
            "--products",
            "5",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for job in ("apify_zara", "download_pending", "process_new", "ximilar_sync"):
        assert any(job in line and "success" in line for line in result.stdout.splitlines()), job
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
    assert "image=collage_ready" in result.stdout
