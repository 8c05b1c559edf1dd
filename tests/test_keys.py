"""Object keys: exact layouts, safe segments for any id, and an injective escape rule."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.strategies import external_ids
from undecat.domain.keys import (
    MAX_KEY_BYTES,
    MediaKind,
    check_user_id,
    collage_key,
    escape_segment,
    is_safe_key,
    media_item,
    original_key,
    originals_prefix,
    unescape_segment,
    user_media_keys,
    user_prefix,
)
from undecat.errors import UserMediaError

_SEGMENT = re.compile(r"[A-Za-z0-9_~-]+")


def test_ordinary_ids_are_kept_as_they_are() -> None:
    """Digits, ASCII letters, '-' and '_' reach the key unchanged, in the documented layout."""
    assert original_key("zara", "495689099", 1) == "originals/zara/495689099/1.jpg"
    assert original_key("massimodutti", "Ab-9_z", 5) == "originals/massimodutti/Ab-9_z/5.jpg"
    assert collage_key("zara", "495689099") == "collages/zara/495689099.jpg"
    assert originals_prefix("zara", "495689099") == "originals/zara/495689099/"


def test_escape_examples() -> None:
    """Unusual characters become ~XX bytes of their UTF-8 form; the empty id a lone ~."""
    assert escape_segment("a.b") == "a~2Eb"
    assert escape_segment("..") == "~2E~2E"
    assert escape_segment("a/b") == "a~2Fb"
    assert escape_segment("~") == "~7E"
    assert escape_segment("é") == "~C3~A9"
    assert escape_segment("") == "~"


def test_user_media_layout() -> None:
    """User media keys follow the bucket layout of the source document."""
    assert user_media_keys("u1", MediaKind.PHOTO, "p1") == (
        "u1/photos/p1/original.jpg",
        "u1/photos/p1/thumb.jpg",
    )
    assert user_media_keys("u1", MediaKind.TRYON, "t1") == (
        "u1/tryon/t1/result.jpg",
        "u1/tryon/t1/thumb.jpg",
    )
    assert user_media_keys("u1", MediaKind.SAVED, "o1") == (
        "u1/saved/o1/original.jpg",
        "u1/saved/o1/thumb.jpg",
    )
    assert user_prefix("u1") == "u1/"


@pytest.mark.parametrize("n", [0, -1, True, 1.0])
def test_photo_number_must_count_from_one(n: object) -> None:
    """A photo number that is not a whole number from 1 is refused."""
    with pytest.raises(ValueError, match="photo number"):
        original_key("zara", "1", n)  # type: ignore[arg-type]


@given(external_ids())
def test_segment_is_safe(text: str) -> None:
    """Any text becomes one non-empty segment of [A-Za-z0-9_~-]: no slash, dot or control char."""
    assert _SEGMENT.fullmatch(escape_segment(text))


@given(external_ids(), external_ids(), st.integers(min_value=1, max_value=50))
def test_keys_have_exactly_the_expected_segments(brand: str, external_id: str, n: int) -> None:
    """Whatever brand and id hold, keys split into exactly the layout's segments, ids read back."""
    original = original_key(brand, external_id, n).split("/")
    assert len(original) == 4
    assert original[0] == "originals"
    assert unescape_segment(original[1]) == brand
    assert unescape_segment(original[2]) == external_id
    assert original[3] == f"{n}.jpg"
    collage = collage_key(brand, external_id).split("/")
    assert len(collage) == 3
    assert collage[0] == "collages"
    assert unescape_segment(collage[1]) == brand
    assert collage[2].endswith(".jpg")
    assert unescape_segment(collage[2].removesuffix(".jpg")) == external_id
    for key in (original_key(brand, external_id, n), collage_key(brand, external_id)):
        assert ".." not in key.split("/")
        assert "" not in key.split("/")


@given(external_ids(), external_ids())
def test_escape_is_injective(a: str, b: str) -> None:
    """Two different ids never share a segment (and so never share a key)."""
    if a != b:
        assert escape_segment(a) != escape_segment(b)
        assert collage_key("zara", a) != collage_key("zara", b)
        assert original_key("zara", a, 1) != original_key("zara", b, 1)
    else:
        assert escape_segment(a) == escape_segment(b)


@given(external_ids())
def test_unescape_inverts_escape(text: str) -> None:
    """Reading a segment back gives the very id that made it, so the rule loses nothing."""
    assert unescape_segment(escape_segment(text)) == text


@given(st.text(max_size=12))
def test_unescape_rejects_what_escape_never_makes(segment: str) -> None:
    """A segment is read back only if escaping its id gives exactly that segment again."""
    try:
        text = unescape_segment(segment)
    except ValueError:
        return
    assert escape_segment(text) == segment


_SAFE_IDS = st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)


@given(_SAFE_IDS, _SAFE_IDS, _SAFE_IDS)
def test_user_media_keys_stay_in_the_users_folder(user: str, other: str, item: str) -> None:
    """A user's keys all start with that user's prefix, and no other user's prefix."""
    for kind in MediaKind:
        for key in user_media_keys(user, kind, item):
            assert key.startswith(user_prefix(user))
            assert len(key.split("/")) == 4
            assert is_safe_key(key)
            if other != user:
                assert not key.startswith(user_prefix(other))


def test_user_media_kind_may_be_its_value() -> None:
    """A kind given as plain text ('tryon') builds the same keys as the enum member."""
    assert user_media_keys("u1", "tryon", "t1") == user_media_keys("u1", MediaKind.TRYON, "t1")
    assert media_item("u1", "saved", "o1").kind is MediaKind.SAVED
    with pytest.raises(UserMediaError, match="unknown media kind"):
        media_item("u1", "videos", "v1")


@pytest.mark.parametrize(
    "good", ["0f8fad5b-d9cb-469f-a165-70867728950e", "u1", "A-z_9", "x" * 64, "-", "_"]
)
def test_safe_ids_pass(good: str) -> None:
    """UUIDs and 1 to 64 of [A-Za-z0-9_-] are taken as they are, for users and items."""
    item = media_item(good, MediaKind.PHOTO, good)
    assert item.main_key == f"{good}/photos/{good}/original.jpg"
    assert check_user_id(good) == good


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("../x", "character"),
        ("..", "character"),
        ("a/b", "character"),
        ("a\\b", "character"),
        ("", "empty"),
        ("a\x00b", "character"),
        ("u1\n", "character"),
        ("x" * 65, "65 characters"),
        ("é", "character"),
        ("a b", "character"),
        ("a.jpg", "character"),
    ],
)
def test_unsafe_ids_are_refused_not_escaped(bad: str, reason: str) -> None:
    """Path-like, empty, NUL, over-long or non-ASCII ids are refused, as user and as item."""
    with pytest.raises(UserMediaError, match=reason) as caught:
        media_item(bad, MediaKind.PHOTO, "p1")
    assert "user id" in str(caught.value)
    with pytest.raises(UserMediaError, match="item id"):
        media_item("u1", MediaKind.PHOTO, bad)
    with pytest.raises(UserMediaError):
        user_prefix(bad)
    if len(bad) > 1:  # the refusal never echoes the id (it may be hostile or personal)
        assert bad not in str(caught.value)


def test_non_text_ids_are_refused() -> None:
    """An id that is not text at all (a number, None) is refused with a clear error."""
    for bad in (12, None, b"u1"):
        with pytest.raises(UserMediaError, match="not text"):
            media_item(bad, MediaKind.PHOTO, "p1")  # type: ignore[arg-type]


@given(external_ids(), external_ids(), st.integers(min_value=1, max_value=9))
def test_built_keys_are_safe(brand: str, external_id: str, n: int) -> None:
    """Every key the rules build passes the stores' safety check (when short enough for S3)."""
    for key in (original_key(brand, external_id, n), collage_key(brand, external_id)):
        assert is_safe_key(key) == (len(key.encode()) <= MAX_KEY_BYTES)


@pytest.mark.parametrize(
    "key",
    ["", "/a", "a//b", "a/", "a/../b", "./a", "a/.", "a\x00b", "a\nb", "a\\b", "a" * 1025],
)
def test_unsafe_keys_are_recognised(key: str) -> None:
    """Empty, '.' or '..' segments, control chars, backslashes, over 1024 bytes: unsafe."""
    assert not is_safe_key(key)


@given(st.text(max_size=70))
def test_an_id_passes_exactly_when_it_matches_the_safe_pattern(text: str) -> None:
    """Any text is taken unchanged if it fully matches [A-Za-z0-9_-]{1,64}, else refused."""
    if re.fullmatch(r"[A-Za-z0-9_-]{1,64}", text):
        assert media_item(text, MediaKind.TRYON, text).folder == f"{text}/tryon/{text}/"
    else:
        with pytest.raises(UserMediaError):
            media_item(text, MediaKind.TRYON, "t1")
        with pytest.raises(UserMediaError):
            media_item("u1", MediaKind.TRYON, text)
