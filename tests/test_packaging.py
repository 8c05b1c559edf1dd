"""An installed (non-editable) undecat carries its migrations and runs `undecat migrate`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_ships_the_migrations(tmp_path: Path) -> None:
    """A wheel built from the repository holds sql/ and its loader finds every file."""
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = wheels.glob("undecat-*.whl")
    subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    probe = (
        "from undecat.adapters.postgres.migrate import load_migrations, sql_root;"
        "print(sql_root());"
        "print(','.join(m.filename for m in load_migrations('staging')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(target)},
    )
    root_line, files_line = result.stdout.strip().splitlines()
    assert root_line.startswith(str(target))
    expected = sorted(p.name for p in (ROOT / "sql" / "staging").glob("*.sql"))
    assert files_line.split(",") == expected
