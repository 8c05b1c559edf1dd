"""Turning an outside service's free text (error bodies, library dumps) into one short line."""

from __future__ import annotations

import re

__all__ = ["MAX_STORED_TEXT", "one_line"]

#: The longest piece of an outside body kept in a message or in ``scraper_logs``.
MAX_STORED_TEXT = 200

_TITLE = re.compile(r"<title[^>]*>(?P<title>.*?)</title>", re.I | re.S)
_TAG = re.compile(r"<[^>]*>|<!--.*?-->", re.S)
_SPACE = re.compile(r"\s+")


def one_line(text: str, limit: int = MAX_STORED_TEXT) -> str:
    """Return ``text`` as one line of at most ``limit`` characters.

    An HTML page becomes its ``<title>`` (or its text without tags); a multi-line library
    dump becomes its first non-empty line; runs of white space become one space.
    """
    text = text.strip()
    if "<" in text and ">" in text:
        title = _TITLE.search(text)
        text = title.group("title") if title else _TAG.sub(" ", text)
    else:
        lines = [line for line in text.splitlines() if line.strip()]
        text = lines[0] if lines else ""
    text = _SPACE.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"
