"""The dry-run index: what would be sent to Ximilar, written to a JSON-lines file.

Used while the collection has no token (the source document's ``XIMILAR_API_TOKEN`` is
still a TODO). Every request the sync would make becomes one line::

    {"at": "...", "method": "insert", "url": ".../insert", "records": [...], "credits": 10}

``credits`` is what the request would cost: Ximilar bills each inserted record; ``get`` and
``delete`` cost none. Nothing is confirmed for real, so the sync job leaves every status as
it was (it releases its claims instead of completing them).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from undecat.adapters.ximilar.wire import WireRecord, converter, ids_body, records_body
from undecat.domain.ximilar import MAX_RECORDS_PER_REQUEST, Confirmed, chunked
from undecat.errors import UndecatError
from undecat.ports import Clock

__all__ = ["DRY_RUN_FILE", "DryRunIndex"]

#: The file name of the dry-run log inside ``DATA_DIR``.
DRY_RUN_FILE = "ximilar-dry-run.jsonl"


class DryRunIndex:
    """A :class:`~undecat.ports.VisualIndex` that records requests instead of sending them."""

    dry_run = True

    def __init__(self, path: Path, clock: Clock, *, endpoint: str) -> None:
        self.path = path
        self._clock = clock
        self._endpoint = endpoint.rstrip("/")
        self._lock = threading.Lock()
        self.requests = 0
        self.credits = 0

    def __repr__(self) -> str:
        return f"DryRunIndex({str(self.path)!r})"

    def insert(self, records: Sequence[Mapping[str, Any]]) -> Confirmed:
        """Record the insert requests; every record counts as accepted."""
        try:
            wire = [converter.structure(dict(r), WireRecord) for r in records]
        except (TypeError, ValueError) as exc:
            raise UndecatError(f"Ximilar insert (dry run): malformed record: {exc}") from exc
        for chunk in chunked(wire, MAX_RECORDS_PER_REQUEST):
            self._write("insert", records_body(list(chunk)), cost=len(chunk))
        return Confirmed(r.id for r in wire)

    def delete(self, record_ids: Sequence[str]) -> Confirmed:
        """Record the delete requests; every id counts as deleted."""
        for chunk in chunked(list(record_ids), MAX_RECORDS_PER_REQUEST):
            self._write("delete", ids_body(list(chunk)), cost=0)
        return Confirmed(record_ids)

    def existing(self, record_ids: Sequence[str]) -> set[str]:
        """Record the get requests; a dry run knows of no record."""
        for chunk in chunked(list(record_ids), MAX_RECORDS_PER_REQUEST):
            self._write("get", ids_body(list(chunk), fields_to_return=("_id",)), cost=0)
        return set()

    def _write(self, method: str, body: dict[str, Any], *, cost: int) -> None:
        line = {
            "at": self._clock.now().isoformat(),
            "method": method,
            "url": f"{self._endpoint}/{method}",
            **body,
            "credits": cost,
        }
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as out:
                out.write(json.dumps(line, ensure_ascii=False) + "\n")
            self.requests += 1
            self.credits += cost
