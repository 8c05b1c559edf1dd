"""Pure rules of the collect stage: photo URLs, prices, ids, sizes and storable text.

Nothing here does I/O. Each rule takes a value as the catalog gave it and returns the value
we store, or raises :class:`~undecat.errors.InvalidItemError` with a reason a person can act
on. The limits mirror the staging schema (``price DECIMAL(10,2)``, ``external_id
VARCHAR(100)``, ``colour VARCHAR(100)``), so a value that passes never breaks a batch insert.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from undecat.errors import InvalidItemError

__all__ = [
    "MAX_EXTERNAL_ID_LENGTH",
    "MAX_PRICE_MINOR",
    "MAX_SHORT_TEXT_LENGTH",
    "PHOTOS_PER_COLOUR",
    "PHOTO_WIDTH",
    "clean_json",
    "clean_text",
    "external_id",
    "photo_urls",
    "price_aed",
    "short_text",
    "size_list",
]

#: The width the ``{width}`` placeholder of a photo URL is filled with.
PHOTO_WIDTH = 1920
#: At most this many photos are taken from each colour's ``xmedia``.
PHOTOS_PER_COLOUR = 5
#: ``DECIMAL(10,2)`` holds at most 99,999,999.99: this many minor units (fils).
MAX_PRICE_MINOR = 10**10 - 1
#: ``external_id VARCHAR(100)``.
MAX_EXTERNAL_ID_LENGTH = 100
#: ``colour VARCHAR(100)``.
MAX_SHORT_TEXT_LENGTH = 100

_REPLACEMENT = "\ufffd"


def clean_text(value: str) -> str:
    r"""Return ``value`` as PostgreSQL can store it: NUL removed, lone surrogates replaced.

    PostgreSQL ``text`` and ``jsonb`` cannot hold U+0000, and a lone UTF-16 surrogate (which
    JSON's ``\ud800`` escapes can produce) cannot be encoded as UTF-8 at all; either would
    fail the whole batch statement, so they are fixed here, for one item alone.
    """
    if "\x00" in value:
        value = value.replace("\x00", "")
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = "".join(_REPLACEMENT if "\ud800" <= c <= "\udfff" else c for c in value)
    return value


def clean_json(value: Any) -> Any:
    """Return a JSON value with :func:`clean_text` applied to every string and key."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(str(k)): clean_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean_json(v) for v in value]
    return value


def external_id(value: object) -> str:
    """Return the catalog id as ``raw_products.external_id`` (``str(id)``), or raise.

    Whole numbers and non-blank text are accepted; booleans, fractions and anything longer
    than the column are not.
    """
    if value is None:
        raise InvalidItemError("item has no id")
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidItemError(f"id must be a whole number or text, got {type(value).__name__}")
    text = clean_text(str(value)).strip()
    if not text:
        raise InvalidItemError("item id is blank")
    if len(text) > MAX_EXTERNAL_ID_LENGTH:
        raise InvalidItemError(f"id is {len(text)} characters, over {MAX_EXTERNAL_ID_LENGTH}")
    return text


def price_aed(value: object) -> Decimal | None:
    """Return a price in minor units (fils) as AED: ÷100; absent or zero is ``None``.

    Text, fractions of a fil, negative numbers and amounts beyond ``DECIMAL(10,2)`` are
    rejected: a wrong price is worse than none, and the item is logged with the reason.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidItemError(f"price must be a number of fils, got {value!r}")
    if isinstance(value, str):
        raise InvalidItemError(f"price must be a number of fils, got text {value[:40]!r}")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidItemError(f"price is not a finite number: {value!r}")
        if not value.is_integer():
            raise InvalidItemError(f"price must be a whole number of fils, got {value!r}")
        value = int(value)
    if not isinstance(value, int):
        raise InvalidItemError(f"price must be a number of fils, got {type(value).__name__}")
    if value < 0:
        raise InvalidItemError(f"price is negative: {value}")
    if value > MAX_PRICE_MINOR:
        raise InvalidItemError(f"price {value} fils is beyond the largest storable price")
    if value == 0:
        return None
    return Decimal(value).scaleb(-2)


#: An absolute http(s) URL with a host and no whitespace anywhere (one C-speed match per URL,
#: as urlsplit per photo was the collect stage's hottest line).
_PHOTO_URL = re.compile(
    r"https?://(?:[^\s/?#@]*@)?(?:[^\s/?#:@\[\]]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]*)?(?:[/?#]\S*)?",
    re.IGNORECASE,
)


#: The usual catalog URL (no user, no port, no IPv6 literal), a subset of ``_PHOTO_URL``
#: that is cheaper to match; anything it refuses is checked against the whole pattern.
_PLAIN_URL = re.compile(r"https?://[^\s/?#:@\[\]]+(?:[/?#]\S*)?")

_WIDTH = str(PHOTO_WIDTH)


def _usable_url(raw: object) -> str | None:
    if not isinstance(raw, str):
        return None
    if not raw.isascii() or "\x00" in raw:  # an ASCII URL without NUL is clean already
        raw = clean_text(raw)
    url = raw.strip().replace("{width}", _WIDTH)
    return url if _PLAIN_URL.fullmatch(url) or _PHOTO_URL.fullmatch(url) else None


def photo_urls(colours: Iterable[Sequence[object]]) -> tuple[str, ...]:
    """Return the photo URLs of a product from each colour's ``xmedia`` list.

    ``{width}`` becomes 1920; only absolute http(s) URLs with a host are kept (so
    ``javascript:``, ``data:`` and relative paths are dropped); a URL seen before (in any
    colour) is dropped; each colour contributes its first five usable URLs, in order. A
    dropped URL does not use up one of the colour's five places.
    """
    urls: dict[str, None] = {}  # an ordered set
    for media in colours:
        taken = 0
        for raw in media:
            url = _usable_url(raw)
            if url is None or url in urls:
                continue
            urls[url] = None
            taken += 1
            if taken == PHOTOS_PER_COLOUR:
                break
    return tuple(urls)


def size_list(value: object) -> tuple[str, ...]:
    """Return sizes as a list: ``"XS, S, M, L"`` -> ``("XS", "S", "M", "L")``.

    A list of names is accepted as well; blanks and repeats are dropped, order is kept.
    """
    if value is None:
        return ()
    if isinstance(value, str):
        return _size_names(value)
    if not isinstance(value, list | tuple):
        raise InvalidItemError(f"sizes must be text or a list, got {type(value).__name__}")
    return _names(value)


# A catalog has a few dozen size ranges ("XS, S, M, L"), shared by thousands of products.
@functools.lru_cache(maxsize=1024)
def _size_names(value: str) -> tuple[str, ...]:
    return _names(value.split(","))


def _names(parts: Iterable[object]) -> tuple[str, ...]:
    sizes: list[str] = []
    for part in parts:
        if not isinstance(part, str | int) or isinstance(part, bool):
            continue
        name = clean_text(str(part)).strip()
        if name and name not in sizes:
            sizes.append(name)
    return tuple(sizes)


def short_text(value: str | None, limit: int = MAX_SHORT_TEXT_LENGTH) -> str | None:
    """Return cleaned text cut to ``limit`` characters (a ``VARCHAR(n)``); blank -> ``None``.

    Used for ``colour``: the full value stays in ``raw_data``, so cutting loses nothing.
    """
    if value is None:
        return None
    text = clean_text(value).strip()
    if not text:
        return None
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
