"""The deploy guide's commands run as written, and none puts a secret on a command line.

Every fenced ``bash``/``sh`` block of docs/deploy.md runs here, from the repository root, with
``STAGING_DB_URL`` pointing at a test database and the package's ``undecat`` on ``PATH``. A
block preceded by ``<!-- not run here: REASON -->`` is skipped (it needs root, systemd as
PID 1 or a real deployment); one preceded by ``<!-- needs: PROGRAM ... -->`` is skipped when
a program is missing. Any other page can opt in by being listed in ``PAGES``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = (ROOT / "docs" / "deploy.md",)
SHELLS = frozenset({"bash", "sh", "shell", "console"})
COMMANDS = SHELLS | {"sql", "psql"}

_FENCE = re.compile(r"^```(\w*)\s*$")
_MARK = re.compile(r"^<!--\s*(not run here|needs):\s*(.*?)\s*-->$")


@attrs.frozen
class Block:
    """One fenced block of a page and the marker comment before it, if any."""

    page: str
    line: int
    language: str
    text: str
    marker: tuple[str, str] | None

    @property
    def name(self) -> str:
        """``page:line`` for test ids."""
        return f"{self.page}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """Every fenced block of ``page``, with the marker on the last non-blank line before it."""
    found: list[Block] = []
    lines = page.read_text().splitlines()
    previous = ""
    n = 0
    while n < len(lines):
        fence = _FENCE.match(lines[n])
        if fence is None:
            if lines[n].strip():
                previous = lines[n].strip()
            n += 1
            continue
        end = n + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        mark = _MARK.match(previous)
        found.append(
            Block(
                page=page.name,
                line=n + 1,
                language=fence.group(1).lower(),
                text="\n".join(lines[n + 1 : end]) + "\n",
                marker=(mark.group(1), mark.group(2)) if mark else None,
            )
        )
        previous = ""
        n = end + 1
    return found


ALL = [b for page in PAGES for b in blocks(page)]
COMMAND_BLOCKS = [b for b in ALL if b.language in COMMANDS]


def test_the_guide_has_command_blocks_that_run() -> None:
    """The guide is read at all: it has command blocks, and some of them run here."""
    assert COMMAND_BLOCKS
    assert any(b.marker is None and b.language in SHELLS for b in COMMAND_BLOCKS)


@pytest.mark.parametrize("block", COMMAND_BLOCKS, ids=lambda b: b.name)
def test_no_command_puts_a_secret_on_a_command_line(block: Block) -> None:
    """No block expands an env file into arguments (readable in /proc, logged by sudo)."""
    assert not re.search(r"\$\(\s*cat\b[^)]*\.env|\.env\s*\|\s*xargs|`cat [^`]*\.env", block.text)
    assert not re.search(
        r"(?i)(password|token|secret)=\S*[^.\s]{3,}", block.text.replace("'...'", "")
    )


@pytest.mark.parametrize("block", COMMAND_BLOCKS, ids=lambda b: b.name)
def test_every_command_block_runs_or_says_why_not(block: Block) -> None:
    """A command block that does not run here carries a reason; SQL blocks are never run."""
    if block.marker is not None:
        assert block.marker[1], f"{block.name}: the marker gives no reason"
    else:
        assert block.language in SHELLS, f"{block.name}: a {block.language} block must be marked"


@pytest.mark.parametrize(
    "block", [b for b in COMMAND_BLOCKS if b.language in SHELLS], ids=lambda b: b.name
)
def test_command_block_runs(block: Block, staging_dsn: str) -> None:
    """Each runnable shell block exits 0 from the repository root, against a test database."""
    if block.marker is not None and block.marker[0] == "not run here":
        pytest.skip(f"not run here: {block.marker[1]}")
    if block.marker is not None:
        missing = [p for p in block.marker[1].split() if shutil.which(p) is None]
        if missing:
            pytest.skip(f"needs {', '.join(missing)}")
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "STAGING_DB_URL": staging_dsn,
    }
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block.text],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, (
        f"{block.name}:\n{result.stdout[-1500:]}\n{result.stderr[-1500:]}"
    )
