"""Logging for people and for journald, with secrets scrubbed either way.

:func:`setup_logging` sends log records to ``stream`` (stdout by default): one JSON object
per line when the stream is not a terminal (journald, a file, a pipe), a short human line
when it is. Every message, argument and exception text goes through
:func:`~undecat.redact.redact_text` with the configuration's secret values first, so a
password or token that reached a log call never reaches the output.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import IO, Any

from undecat.redact import redact_text

__all__ = ["HumanFormatter", "JsonFormatter", "setup_logging"]

_HANDLER_NAME = "undecat"
# Attributes every LogRecord has; anything else was passed as ``extra=`` and is kept.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class _Redacting(logging.Formatter):
    """A formatter whose output has the known secrets and URL passwords removed."""

    def __init__(self, secrets: Iterable[str] = (), fmt: str | None = None) -> None:
        super().__init__(fmt)
        self.secrets = tuple(secrets)

    def scrub(self, text: str) -> str:
        """Return ``text`` without credentials."""
        return redact_text(text, self.secrets)


class JsonFormatter(_Redacting):
    """One JSON object per record: time, level, logger, message, exception, extras."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as one line of JSON."""
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": self.scrub(record.getMessage()),
        }
        if record.exc_info:
            entry["exception"] = self.scrub(self.formatException(record.exc_info))
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = (
                    value if isinstance(value, int | float | bool) else self.scrub(str(value))
                )
        return json.dumps(entry, ensure_ascii=False)


class HumanFormatter(_Redacting):
    """``HH:MM:SS level logger: message`` for a terminal."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__(secrets, "%(asctime)s %(levelname)-7s %(name)s: %(message)s")
        self.default_time_format = "%H:%M:%S"
        self.default_msec_format = None

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as one readable line (plus a scrubbed traceback, if any)."""
        return self.scrub(super().format(record))


def setup_logging(
    secrets: Iterable[str] = (),
    *,
    stream: IO[str] | None = None,
    level: int = logging.INFO,
    json_lines: bool | None = None,
) -> logging.Handler:
    """Send the root logger's records to ``stream``: JSON lines, or human lines on a terminal.

    ``json_lines`` forces the format (default: JSON unless ``stream`` is a terminal). Calling
    it again replaces the handler it installed before (e.g. once the secrets are known).
    """
    out = sys.stdout if stream is None else stream
    as_json = (not _is_terminal(out)) if json_lines is None else json_lines
    handler: logging.StreamHandler[Any] = (
        _CurrentStdout() if stream is None else logging.StreamHandler(stream)
    )
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter(secrets) if as_json else HumanFormatter(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        if old.get_name() == _HANDLER_NAME:
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler


class _CurrentStdout(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler writing to whatever ``sys.stdout`` is when a record is emitted."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property
    def stream(self) -> IO[str]:
        """The current standard output."""
        return sys.stdout

    @stream.setter
    def stream(self, value: IO[str]) -> None:
        """Ignored: the stream is always the current standard output."""


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
