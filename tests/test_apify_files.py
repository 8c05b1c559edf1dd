"""Dataset exports read incrementally: JSON arrays, JSON lines, and broken files."""

from __future__ import annotations

import io
import json
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from undecat.adapters.apify import FileCatalogSource, UnreadableItem
from undecat.adapters.apify.files import MalformedFileError, iter_json_array, iter_json_lines
from undecat.errors import ConfigError

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


class _Trickle(io.StringIO):
    """A text stream that hands out at most ``size`` characters a read, to cut values anywhere."""

    def __init__(self, text: str, size: int) -> None:
        super().__init__(text)
        self._size = size

    def read(self, n: int | None = -1) -> str:
        return super().read(self._size if n is None or n < 0 else min(n, self._size))


@given(st.lists(json_values, max_size=8), st.integers(min_value=1, max_value=7), st.booleans())
def test_array_splitter_matches_json_loads(values: list[Any], chunk: int, pretty: bool) -> None:
    """Whatever the chunk boundaries and spacing, the splitter yields what json.loads would."""
    text = json.dumps(values, indent=2 if pretty else None)
    assert list(iter_json_array(_Trickle(text, chunk))) == values


def test_array_numbers_cut_at_a_chunk_boundary_are_whole() -> None:
    """A number split across two reads is decoded whole, not as its first digits."""
    assert list(iter_json_array(_Trickle("[12345, 678]", 3))) == [12345, 678]


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('[{"id": 1}, {"id": 2}', "breaks off"),
        ('[{"id": 1} {"id": 2}]', "expected ','"),
        ('[{"id": 1}, {"id": ]', "invalid JSON"),
        ('[{"id": 1},]', "invalid JSON"),
        ('{"id": 1}', "must start with"),
    ],
)
def test_broken_arrays_stop_with_the_position(text: str, where: str) -> None:
    """A truncated or malformed array stops with a readable position, after the good items."""
    got: list[Any] = []
    with pytest.raises(MalformedFileError, match=where):
        got.extend(iter_json_array(io.StringIO(text)))
    if text.startswith("["):
        assert got[:1] == [{"id": 1}]


def test_array_element_over_the_limit_is_refused() -> None:
    """One element bigger than the hard limit cannot make the reader buffer without end."""
    text = '[{"id": 1}, "' + "x" * 5000 + '"]'
    with pytest.raises(MalformedFileError, match="over"):
        list(iter_json_array(_Trickle(text, 1000), max_chars=2000))


def test_json_lines_keep_going_past_a_bad_line() -> None:
    """A bad, non-UTF-8 or oversized line is one UnreadableItem; the lines after it are read."""
    data = (
        b'{"id": 1}\n\nnot json\n\xff\xfe\n{"id": 2}\n' + b'{"x": "' + b"y" * 100 + b'"}\n{"id": 3}'
    )
    items = list(iter_json_lines(io.BytesIO(data), max_bytes=50))
    assert items[0] == {"id": 1}
    assert isinstance(items[1], UnreadableItem)
    assert "line 3" in items[1].reason
    assert isinstance(items[2], UnreadableItem)
    assert "UTF-8" in items[2].reason
    assert items[3] == {"id": 2}
    assert isinstance(items[4], UnreadableItem)
    assert "over 50 bytes" in items[4].reason
    assert items[5] == {"id": 3}


@pytest.mark.parametrize("kind", ["json", "jsonl"])
def test_file_source_detects_the_format(tmp_path: Path, kind: str) -> None:
    """The file source tells a JSON array from JSON lines and ends SUCCEEDED when read through."""
    items = [{"id": n, "name": "فستان 👗"} for n in range(3)]
    path = tmp_path / f"export.{kind}"
    if kind == "json":
        path.write_text("\ufeff" + json.dumps(items, ensure_ascii=False), encoding="utf-8")
    else:
        path.write_text("\n".join(json.dumps(i) for i in items) + "\n", encoding="utf-8")
    run = FileCatalogSource(path).start("zara")
    assert run.status() == "RUNNING"
    assert list(run.items()) == items
    assert run.status() == "SUCCEEDED"
    assert run.run_id is None


def test_truncated_array_file_ends_failed_with_the_items_read(tmp_path: Path) -> None:
    """A truncated export yields its complete items, then the run ends FAILED with the reason."""
    path = tmp_path / "cut.json"
    path.write_text('[{"id": 1}, {"id": 2}, {"id": ', encoding="utf-8")
    run = FileCatalogSource(path).start("zara")
    assert list(run.items()) == [{"id": 1}, {"id": 2}]
    assert run.status() == "FAILED"
    assert run.problem is not None
    assert "breaks off" in run.problem or "invalid JSON" in run.problem


def test_big_array_file_is_read_in_bounded_memory(tmp_path: Path) -> None:
    """Reading a multi-megabyte array never holds much more than one chunk plus one element."""
    path = tmp_path / "big.json"
    element = {"id": 0, "description": "x" * 2000}
    with path.open("w", encoding="utf-8") as out:
        out.write("[")
        out.write(",".join(json.dumps({**element, "id": n}) for n in range(3000)))
        out.write("]")
    tracemalloc.start()
    try:
        count = sum(1 for _ in FileCatalogSource(path).start("zara").items())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 3000
    assert path.stat().st_size > 6_000_000
    assert peak < 1_000_000  # a few chunks and elements, never the 6 MB file


def test_missing_or_foreign_files_are_config_errors(tmp_path: Path) -> None:
    """A missing file, or one that is neither format, is a clear configuration error."""
    with pytest.raises(ConfigError, match="no such file"):
        FileCatalogSource(tmp_path / "nope.json")
    csv = tmp_path / "export.csv"
    csv.write_text("id,name\n1,x\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="neither a JSON array nor JSON lines"):
        FileCatalogSource(csv).start("zara")
