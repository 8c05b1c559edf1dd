"""The availability read API: the README's example runs, and the call is one query."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import psycopg
import pytest

from undecat.availability import in_stock
from undecat.errors import UndecatError

README = Path(__file__).resolve().parents[1] / "README.md"


def _seed(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO catalog.availability (brand, external_id, store_id, sizes_in_stock,"
            " fetched_at) VALUES"
            ' (\'zara\', \'443322110\', 1236, \'[{"colour": "800", "size": "M", "stock": 1},'
            '  {"colour": "800", "size": "S", "stock": 6}]\', now()),'
            " ('zara', '443322110', 1240, '[]', now()),"
            ' (\'zara\', \'443322111\', 1300, \'[{"colour": "800", "size": "S", "stock": 1}]\','
            "  now())"
        )


def test_the_readme_example_runs(
    production_dsn_empty: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's Python block runs against a production database and gives its answer."""
    _seed(production_dsn_empty)
    section = README.read_text(encoding="utf-8").split("## In-store availability", 1)[1]
    (block,) = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)[:1]
    monkeypatch.setenv("PRODUCTION_DB_URL", production_dsn_empty)
    namespace: dict[str, object] = {}
    exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102  # the README's own code
    assert namespace["stock"] == {"443322110": {1236: ["M", "S"]}}


def test_one_round_trip(production_dsn_empty: str) -> None:
    """in_stock sends one statement whatever the number of products."""
    _seed(production_dsn_empty)
    with psycopg.connect(production_dsn_empty) as conn:
        sent: list[str] = []

        class Counting(psycopg.Cursor[Any]):
            def execute(self, query, params=None, **kwargs):  # type: ignore[no-untyped-def]
                sent.append(str(query))
                return super().execute(query, params, **kwargs)

        conn.cursor_factory = Counting
        ids = [str(443322000 + n) for n in range(200)] + ["443322110", "443322111"]
        assert in_stock(conn, "zara", ids) == {
            "443322110": {1236: ["M", "S"]},
            "443322111": {1300: ["S"]},
        }
        assert len(sent) == 1


def test_a_closed_connection_is_an_undecat_error(production_dsn_empty: str) -> None:
    """Database failures come out as undecat errors."""
    conn = psycopg.connect(production_dsn_empty)
    conn.close()
    with pytest.raises(UndecatError):
        in_stock(conn, "zara", ["1"])
