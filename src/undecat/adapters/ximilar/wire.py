"""The Ximilar JSON boundary: one cattrs converter for request bodies and replies.

Ximilar does not document its reply schema in any reachable material, so reading is
liberal and confirming is strict:

* a top-level ``status`` may be an int, a numeric string or ``{"code", "text"}``;
* ``records`` lists the records the call acted on; an entry counts as done only when it
  names an ``_id`` and carries no error status of its own (``_status`` >= 300);
* ``skipped_records`` lists refused records, each with an ``_id`` and a ``_reason`` that may
  be ``{"status": {"code", "text"}}``, ``{"code", "text"}``, a plain string, or missing.

Anything else in a reply is ignored; a reply that is not a JSON object reads as "nothing
confirmed" and the client verifies with ``get`` instead of guessing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import cattrs

__all__ = [
    "WireOutcome",
    "WireRecord",
    "WireReply",
    "WireStatus",
    "converter",
    "ids_body",
    "parse_reply",
    "records_body",
]


@attrs.frozen
class WireStatus:
    """A status as Ximilar reports it: a code and, maybe, a text."""

    code: int | None = None
    text: str | None = None

    @property
    def is_error(self) -> bool:
        """Whether the code says the operation failed (>= 300)."""
        return self.code is not None and self.code >= 300

    def describe(self) -> str:
        """A short readable form, e.g. ``412 capacity exceeded``."""
        parts = [str(self.code) if self.code is not None else "", self.text or ""]
        return " ".join(p for p in parts if p) or "no reason given"


@attrs.frozen
class WireRecord:
    """A record as sent: ``_id``, ``_url`` and string metadata fields."""

    id: str
    url: str
    metadata: dict[str, str] = attrs.field(factory=dict)


@attrs.frozen
class WireOutcome:
    """What a reply says about one record."""

    id: str
    status: WireStatus | None = None


@attrs.frozen
class WireReply:
    """A parsed reply: the top-level status, acted-on records and skipped records."""

    status: WireStatus | None = None
    records: tuple[WireOutcome, ...] | None = None  # None: the reply had no ``records``
    skipped: tuple[WireOutcome, ...] = ()


converter = cattrs.Converter()


def _status(value: Any, _: Any = None) -> WireStatus | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return WireStatus(code=value)
    if isinstance(value, str):
        return WireStatus(code=int(value)) if value.strip().isdigit() else WireStatus(text=value)
    if isinstance(value, dict):
        if "status" in value and "code" not in value:
            return _status(value["status"])
        code = value.get("code")
        text = value.get("text", value.get("message"))
        return WireStatus(
            code=code if isinstance(code, int) and not isinstance(code, bool) else None,
            text=str(text) if text is not None else None,
        )
    return None


def _outcome(value: Any, _: Any = None) -> WireOutcome | None:
    if not isinstance(value, dict) or not isinstance(value.get("_id"), str | int):
        return None
    status = _status(value.get("_status")) or _status(value.get("_reason"))
    return WireOutcome(id=str(value["_id"]), status=status)


def _outcomes(value: Any) -> tuple[WireOutcome, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(o for o in (_outcome(v) for v in value) if o is not None)


def _reply(value: Any, _: Any = None) -> WireReply:
    if not isinstance(value, dict):
        return WireReply()
    records = value.get("records")
    return WireReply(
        status=_status(value.get("status")),
        records=_outcomes(records) if isinstance(records, list) else None,
        skipped=_outcomes(value.get("skipped_records")),
    )


def _unstructure_record(record: WireRecord) -> dict[str, Any]:
    return {**record.metadata, "_id": record.id, "_url": record.url}


def _structure_record(value: Any, _: Any = None) -> WireRecord:
    if not isinstance(value, dict):
        raise TypeError("a Ximilar record is a mapping of fields")
    rid, url = value.get("_id"), value.get("_url")
    if not isinstance(rid, str) or not rid or not isinstance(url, str) or not url:
        raise ValueError("a Ximilar record needs a non-empty string _id and _url")
    metadata = {str(k): str(v) for k, v in value.items() if k not in ("_id", "_url")}
    return WireRecord(id=rid, url=url, metadata=metadata)


converter.register_structure_hook(WireStatus, lambda v, t: _status(v) or WireStatus())
converter.register_structure_hook(WireReply, _reply)
converter.register_structure_hook(WireRecord, _structure_record)
converter.register_unstructure_hook(WireRecord, _unstructure_record)


def parse_reply(payload: Any) -> WireReply:
    """Read a decoded reply body (any JSON value) liberally."""
    return converter.structure(payload, WireReply)


def records_body(records: Sequence[WireRecord]) -> dict[str, Any]:
    """The body of an ``insert``: ``{"records": [{"_id", "_url", ...metadata}]}``."""
    return {"records": [converter.unstructure(r) for r in records]}


def ids_body(record_ids: Sequence[str], *, fields_to_return: Sequence[str] = ()) -> dict[str, Any]:
    """The body of a ``get`` or ``delete``: ``{"records": [{"_id": ...}]}``."""
    body: dict[str, Any] = {"records": [{"_id": rid} for rid in record_ids]}
    if fields_to_return:
        body["fields_to_return"] = list(fields_to_return)
    return body
