"""Object keys of the catalog bucket and the user media bucket, safe for any id.

The layouts are contracts (the source document's ``unde-images`` and ``unde-user-media``
trees)::

    originals/{brand}/{external_id}/{n}.jpg
    collages/{brand}/{external_id}.jpg
    {user_id}/photos/{photo_id}/original.jpg   + thumb.jpg
    {user_id}/tryon/{tryon_id}/result.jpg      + thumb.jpg
    {user_id}/saved/{outfit_id}/original.jpg   + thumb.jpg

Every id becomes exactly one key segment through :func:`escape_segment`:

* ASCII letters, digits, ``-`` and ``_`` are kept as they are, so ordinary ids (``495689099``,
  ``ab-12_C``) read the same in the bucket as in the catalog;
* every other character is written as its UTF-8 bytes, each as ``~`` and two upper-case hex
  digits (``.`` -> ``~2E``, ``/`` -> ``~2F``, ``~`` -> ``~7E``, ``é`` -> ``~C3~A9``);
* the empty id is written as a lone ``~``, which no other id produces.

So a segment holds only ``[A-Za-z0-9_~-]``: never a slash, a dot (hence never ``..``), a
control character or anything a URL must quote, and it is never empty. The mapping is
injective because ``~`` is itself escaped and every escape has a fixed width:
:func:`unescape_segment` reads any segment back to the one id that produced it.
"""

from __future__ import annotations

import enum
import re
import string
from collections.abc import Mapping

__all__ = [
    "MAX_KEY_BYTES",
    "MEDIA_FILES",
    "MediaKind",
    "collage_key",
    "escape_segment",
    "is_safe_key",
    "original_key",
    "originals_prefix",
    "unescape_segment",
    "user_media_keys",
    "user_prefix",
]

#: The longest key S3 accepts, in UTF-8 bytes.
MAX_KEY_BYTES = 1024

_ORDINARY = frozenset(string.ascii_letters + string.digits + "-_")
_EMPTY = "~"
_ESCAPED = re.compile(r"(?:[A-Za-z0-9_-]|~[0-9A-F]{2})+")
_SAFE_SEGMENT = re.compile(r"[^\x00-\x1f\x7f/\\]+")


def escape_segment(text: str) -> str:
    """Return ``text`` as one key segment (the rule is in the module docstring)."""
    if not text:
        return _EMPTY
    out: list[str] = []
    for char in text:
        if char in _ORDINARY:
            out.append(char)
        else:
            # surrogatepass: a lone surrogate (possible in a Python str) still maps to bytes
            # of its own, so the rule stays total and injective over every str.
            out.extend(f"~{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))
    return "".join(out)


def unescape_segment(segment: str) -> str:
    """Return the id that :func:`escape_segment` turned into ``segment``; ValueError if none."""
    if segment == _EMPTY:
        return ""
    if not _ESCAPED.fullmatch(segment):
        raise ValueError("not an escaped key segment")
    raw = bytearray()
    index = 0
    while index < len(segment):
        if segment[index] == "~":
            raw.append(int(segment[index + 1 : index + 3], 16))
            index += 3
        else:
            raw.extend(segment[index].encode("ascii"))
            index += 1
    return raw.decode("utf-8", "surrogatepass")


def original_key(brand: str, external_id: str, n: int) -> str:
    """Return the key of a product's ``n``-th original photo (``n`` counts from 1)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"photo number must be a whole number from 1, got {n!r}")
    return f"{originals_prefix(brand, external_id)}{n}.jpg"


def originals_prefix(brand: str, external_id: str) -> str:
    """Return the prefix (ending in ``/``) under which a product's originals are stored."""
    return f"originals/{escape_segment(brand)}/{escape_segment(external_id)}/"


def collage_key(brand: str, external_id: str) -> str:
    """Return the key of a product's collage."""
    return f"collages/{escape_segment(brand)}/{escape_segment(external_id)}.jpg"


class MediaKind(enum.StrEnum):
    """The three kinds of user media (the folder under the user's prefix)."""

    PHOTO = "photos"
    TRYON = "tryon"
    SAVED = "saved"


#: kind -> (main file, thumbnail file) of the pair stored for one item.
MEDIA_FILES: Mapping[MediaKind, tuple[str, str]] = {
    MediaKind.PHOTO: ("original.jpg", "thumb.jpg"),
    MediaKind.TRYON: ("result.jpg", "thumb.jpg"),
    MediaKind.SAVED: ("original.jpg", "thumb.jpg"),
}


def user_prefix(user_id: str) -> str:
    """Return the prefix (ending in ``/``) of everything one user has stored."""
    return f"{escape_segment(user_id)}/"


def user_media_keys(user_id: str, kind: MediaKind, item_id: str) -> tuple[str, str]:
    """Return the (main, thumbnail) keys of one user media item of ``kind``."""
    main, thumb = MEDIA_FILES[MediaKind(kind)]
    folder = f"{user_prefix(user_id)}{kind.value}/{escape_segment(item_id)}/"
    return folder + main, folder + thumb


def is_safe_key(key: str) -> bool:
    """Return whether ``key`` is a key a store may accept.

    Non-empty, at most :data:`MAX_KEY_BYTES` bytes, no leading or doubled slash, no ``.`` or
    ``..`` segment, no control character or backslash. Every key built above is safe.
    """
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        return False
    if not key or size > MAX_KEY_BYTES:
        return False
    return all(
        segment not in (".", "..") and _SAFE_SEGMENT.fullmatch(segment)
        for segment in key.split("/")
    )
