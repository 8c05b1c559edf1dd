"""The file catalog source: a dataset export read instead of calling Apify (``--from-file``).

For offline runs, backfills and the demo. Both export formats of Apify are understood and
told apart by the first character: a JSON array (``[ {...}, {...} ]``) or JSON lines (one
object a line). Either is read incrementally, so a 47,000-item export never sits in memory
whole: JSON lines line by line, a JSON array by a small splitter that decodes one element at
a time with :meth:`json.JSONDecoder.raw_decode` over a sliding buffer.

A line that is not JSON is one bad item (rejected alone, the rest is read). A JSON array
that breaks off or turns malformed cannot be resynchronised: reading stops there, the items
read so far are kept, and the run ends FAILED, so nothing is delisted on a partial file.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from undecat.adapters.apify.items import UnreadableItem
from undecat.errors import ConfigError

__all__ = ["FileCatalogSource", "FileRun", "iter_json_array", "iter_json_lines"]

_log = logging.getLogger("undecat.apify")

_CHUNK = 64 * 1024
#: No single item of an export may be bigger than this; beyond it the file is malformed.
MAX_ELEMENT_CHARS = 64 * 1024 * 1024


class MalformedFileError(Exception):
    """The export cannot be read further (its position is in the message)."""


def _skip_space(buf: str, pos: int) -> int:
    while pos < len(buf) and buf[pos] in " \t\r\n":
        pos += 1
    return pos


def iter_json_array(stream: IO[str], *, max_chars: int = MAX_ELEMENT_CHARS) -> Iterator[Any]:
    """Yield the elements of the JSON array in ``stream`` one at a time.

    Raises :class:`MalformedFileError` where the array stops being valid JSON.
    """
    decoder = json.JSONDecoder()
    buf = stream.read(_CHUNK).lstrip("\ufeff")
    consumed = 0  # characters dropped from the front of ``buf`` so far
    eof = not buf
    pos = _skip_space(buf, 0)
    if pos >= len(buf) or buf[pos] != "[":
        raise MalformedFileError("a JSON array must start with '['")
    pos += 1
    expect_value = True  # after '[' or ',': a value (or, right after '[', the closing ']')
    first = True
    while True:
        pos = _skip_space(buf, pos)
        if pos >= len(buf) and not eof:
            buf, pos, consumed, eof = _refill(stream, buf, pos, consumed, _CHUNK)
            continue
        if pos >= len(buf):
            raise MalformedFileError(f"the array breaks off at character {consumed + pos}")
        char = buf[pos]
        if char == "]" and (not expect_value or first):
            return
        if not expect_value:
            if char != ",":
                raise MalformedFileError(f"expected ',' or ']' at character {consumed + pos}")
            pos += 1
            expect_value = True
            continue
        try:
            value, end = decoder.raw_decode(buf, pos)
        except json.JSONDecodeError:
            value, end = None, -1
        if end == -1 or (not eof and _may_continue(value, buf, end)):
            if eof:
                raise MalformedFileError(
                    f"invalid JSON in the array at character {consumed + pos}"
                ) from None
            if len(buf) - pos > max_chars:
                raise MalformedFileError(
                    f"an element at character {consumed + pos} is over {max_chars:,} characters"
                )
            # Read as much again as is buffered, so a huge element is decoded O(n log n).
            buf, pos, consumed, eof = _refill(stream, buf, pos, consumed, max(_CHUNK, len(buf)))
            continue
        yield value
        pos, expect_value, first = end, False, False


def _may_continue(value: Any, buf: str, end: int) -> bool:
    """Whether a number decoded at the buffer's edge may be cut short ("12" of "12.5")."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False  # strings, objects, arrays and literals end with their own delimiter
    return end >= len(buf) or buf[end] in "0123456789.eE+-"


def _refill(
    stream: IO[str], buf: str, pos: int, consumed: int, size: int
) -> tuple[str, int, int, bool]:
    more = stream.read(size)
    return buf[pos:] + more, 0, consumed + pos, not more


def iter_json_lines(stream: IO[bytes], *, max_bytes: int = MAX_ELEMENT_CHARS) -> Iterator[Any]:
    """Yield one decoded item per non-blank line; an undecodable line yields UnreadableItem."""
    number = 0
    while True:
        line = stream.readline(max_bytes + 1)
        if not line:
            return
        number += 1
        if len(line) > max_bytes and not line.endswith(b"\n"):
            while (rest := stream.readline(_CHUNK)) and not rest.endswith(b"\n"):
                pass  # skip the rest of the oversized line
            yield UnreadableItem(f"line {number} is over {max_bytes:,} bytes")
            continue
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except UnicodeDecodeError:
            yield UnreadableItem(f"line {number} is not UTF-8")
        except json.JSONDecodeError as exc:
            yield UnreadableItem(
                f"line {number} is not valid JSON: {exc.msg} at column {exc.colno}"
            )


def _detect(path: Path) -> str:
    with path.open("rb") as probe:
        head = probe.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"["):
        return "json"
    if head.startswith(b"{"):
        return "jsonl"
    if not head:
        return "empty"
    raise ConfigError(f"--from-file {path}: neither a JSON array nor JSON lines")


class FileRun:
    """One read of an export file; SUCCEEDED once it has been read to the end."""

    def __init__(self, path: Path, kind: str) -> None:
        self.run_id: str | None = None
        self.path = path
        self.kind = kind
        self._status = "RUNNING"
        self.problem: str | None = None

    def __repr__(self) -> str:
        return f"FileRun(path={str(self.path)!r}, kind={self.kind!r}, status={self._status!r})"

    def items(self) -> Iterator[Any]:
        """Yield the file's items in order."""
        try:
            if self.kind == "json":
                with self.path.open(encoding="utf-8", errors="replace", newline="") as text:
                    yield from iter_json_array(text)
            elif self.kind == "jsonl":
                with self.path.open("rb") as raw:
                    yield from iter_json_lines(raw)
        except MalformedFileError as exc:
            self.problem = f"{self.path}: {exc}"
            self._status = "FAILED"
            _log.error("stopped reading %s", self.problem)
            return
        self._status = "SUCCEEDED"

    def status(self) -> str:
        """Return SUCCEEDED when read to the end, FAILED when the file broke off or was bad."""
        return self._status

    def end_reason(self) -> str | None:
        """Return where and how the file broke off, when it did."""
        return self.problem


class FileCatalogSource:
    """The :class:`~undecat.ports.CatalogSource` reading one export file for any brand."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise ConfigError(f"--from-file {path}: no such file")
        self.path = path

    def __repr__(self) -> str:
        return f"FileCatalogSource(path={str(self.path)!r})"

    def start(self, brand: str) -> FileRun:
        """Open the export (``brand`` only labels the run: the file holds one brand)."""
        del brand
        return FileRun(self.path, _detect(self.path))
