"""Object keys of the catalog bucket and the user media bucket, safe for any id.

The layouts are contracts (the source document's ``unde-images`` and ``unde-user-media``
trees)::

    originals/{brand}/{external_id}/{n}.jpg
    collages/{brand}/{external_id}.jpg
    {user_id}/photos/{photo_id}/original.jpg   + thumb.jpg
    {user_id}/tryon/{tryon_id}/result.jpg      + thumb.jpg
    {user_id}/saved/{outfit_id}/original.jpg   + thumb.jpg

Every catalog id becomes exactly one key segment through :func:`escape_segment`:

* ASCII letters, digits, ``-`` and ``_`` are kept as they are, so ordinary ids (``495689099``,
  ``ab-12_C``) read the same in the bucket as in the catalog;
* every other character is written as its UTF-8 bytes, each as ``~`` and two upper-case hex
  digits (``.`` -> ``~2E``, ``/`` -> ``~2F``, ``~`` -> ``~7E``, ``é`` -> ``~C3~A9``);
* the empty id is written as a lone ``~``, which no other id produces.

So a segment holds only ``[A-Za-z0-9_~-]``: never a slash, a dot (hence never ``..``), a
control character or anything a URL must quote, and it is never empty. The mapping is
injective because ``~`` is itself escaped and every escape has a fixed width:
:func:`unescape_segment` reads any segment back to the one id that produced it.

User media ids are not escaped but **refused** unless they match :data:`SAFE_ID_PATTERN`
(``[A-Za-z0-9_-]{1,64}``: UUIDs, numeric ids, slugs), so a key of the private bucket always
reads exactly as the ids the app holds, and ``../other``, ``a/b``, an empty or over-long id
never reach a key (:func:`media_item`).
"""

from __future__ import annotations

import enum
import re
import string
from collections.abc import Mapping

import attrs

from undecat.errors import UserMediaError

__all__ = [
    "MAX_KEY_BYTES",
    "MEDIA_FILES",
    "SAFE_ID_PATTERN",
    "MediaItem",
    "MediaKind",
    "check_user_id",
    "collage_key",
    "escape_segment",
    "is_safe_key",
    "media_item",
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

#: What a user id or an item id of the user media bucket may be: 1 to 64 ASCII letters,
#: digits, ``-`` or ``_`` (a UUID in its usual 36-character form passes).
SAFE_ID_PATTERN = r"[A-Za-z0-9_-]{1,64}"
_SAFE_ID = re.compile(SAFE_ID_PATTERN)


def _checked_id(what: str, value: object) -> str:
    """``value`` if it is a safe id; the refusal names the rule, never echoes the value."""
    if not isinstance(value, str):
        reason = f"is a {type(value).__name__}, not text"
    elif not value:
        reason = "is empty"
    elif len(value) > 64:
        reason = f"has {len(value)} characters (at most 64)"
    # fullmatch, not match with "$": "$" would let a trailing newline through.
    elif not _SAFE_ID.fullmatch(value):
        reason = "has a character other than A-Z a-z 0-9 - _"
    else:
        return value
    raise UserMediaError(f"refused {what}: it {reason} (UUIDs and [A-Za-z0-9_-]{{1,64}} pass)")


def _checked_kind(kind: object) -> MediaKind:
    try:
        return MediaKind(kind)  # type: ignore[arg-type]  # anything else is refused below
    except ValueError:
        known = ", ".join(k.value for k in MediaKind)
        raise UserMediaError(f"unknown media kind {kind!r}; expected one of {known}") from None


@attrs.frozen
class MediaItem:
    """One item of the user media bucket, from ids already checked (see :func:`media_item`)."""

    user_id: str
    kind: MediaKind
    item_id: str

    @property
    def folder(self) -> str:
        """The item's folder, ``{user_id}/{kind}/{item_id}/``."""
        return f"{self.user_id}/{self.kind.value}/{self.item_id}/"

    @property
    def main_key(self) -> str:
        """The key of the full image (``original.jpg`` or ``result.jpg``)."""
        return self.folder + MEDIA_FILES[self.kind][0]

    @property
    def thumb_key(self) -> str:
        """The key of the thumbnail (``thumb.jpg``)."""
        return self.folder + MEDIA_FILES[self.kind][1]

    @property
    def keys(self) -> tuple[str, str]:
        """(main, thumbnail) keys."""
        return self.main_key, self.thumb_key


def media_item(user_id: str, kind: MediaKind | str, item_id: str) -> MediaItem:
    """Check the ids and the kind and return the item; :class:`UserMediaError` if refused.

    Ids must match :data:`SAFE_ID_PATTERN` whole; ``kind`` may be a :class:`MediaKind` or
    its value (``"photos"``, ``"tryon"``, ``"saved"``).
    """
    return MediaItem(
        _checked_id("user id", user_id), _checked_kind(kind), _checked_id("item id", item_id)
    )


def check_user_id(user_id: str) -> str:
    """Return ``user_id`` if it matches :data:`SAFE_ID_PATTERN`; :class:`UserMediaError` if not."""
    return _checked_id("user id", user_id)


def user_prefix(user_id: str) -> str:
    """Return the prefix (ending in ``/``) of everything one user has stored."""
    return f"{check_user_id(user_id)}/"


def user_media_keys(user_id: str, kind: MediaKind | str, item_id: str) -> tuple[str, str]:
    """Return the (main, thumbnail) keys of one user media item of ``kind`` (ids checked)."""
    return media_item(user_id, kind, item_id).keys


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
