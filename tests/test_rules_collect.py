"""Property tests of the collect stage's pure rules (undecat.domain.rules)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.strategies import VALID_PHOTO_URLS, catalog_texts, xmedia_lists
from undecat.domain import rules
from undecat.errors import InvalidItemError


@given(xmedia_lists())
def test_photo_urls_are_capped_ordered_unique_and_absolute(colours: list[list[object]]) -> None:
    """Photo URLs: the first 5 usable, unseen URLs of each colour, in order, {width} -> 1920."""
    expected: list[str] = []
    for media in colours:
        taken = 0
        for raw in media:
            if taken == 5:
                break
            if raw in VALID_PHOTO_URLS:
                url = str(raw).strip().replace("{width}", "1920")
                if url not in expected:
                    expected.append(url)
                    taken += 1
    assert list(rules.photo_urls(colours)) == expected


@given(
    st.from_regex(r"\A(?:https?|HTTP)://[^/?#]{0,12}(?:[/?#].{0,12})?\Z")
    | st.text(alphabet="hts:/?#@[]: .ab1\t\x1c\u3000", max_size=30)
)
def test_the_quick_url_check_accepts_only_what_the_full_pattern_does(url: str) -> None:
    """The usual URL is matched by a cheaper pattern first; it must never widen the rule."""
    if rules._PLAIN_URL.fullmatch(url):
        assert rules._PHOTO_URL.fullmatch(url)


def test_photo_urls_examples() -> None:
    """{width} is filled; javascript:, relative and data: URLs and repeats are dropped."""
    colours = [
        [
            "https://static.zara.net/a-p.jpg?w={width}",
            "javascript:alert(1)",
            "/photos/relative.jpg",
            "data:image/png;base64,AAAA",
            "https://static.zara.net/a-p.jpg?w={width}",
            "https://static.zara.net/a-e1.jpg?w={width}",
        ],
        ["https://static.zara.net/a-e1.jpg?w={width}", "http://static.zara.net/b.jpg"],
    ]
    assert rules.photo_urls(colours) == (
        "https://static.zara.net/a-p.jpg?w=1920",
        "https://static.zara.net/a-e1.jpg?w=1920",
        "http://static.zara.net/b.jpg",
    )
    six = [[f"https://x.example/{i}.jpg" for i in range(7)]]
    assert len(rules.photo_urls(six)) == 5


@given(st.integers(min_value=1, max_value=rules.MAX_PRICE_MINOR))
def test_price_is_minor_units_over_100(fils: int) -> None:
    """Any storable whole number of fils becomes that amount ÷ 100 with two decimals."""
    price = rules.price_aed(fils)
    assert price is not None
    assert price * 100 == fils
    assert price.as_tuple().exponent == -2
    assert price < Decimal("100000000")  # fits DECIMAL(10,2)


@pytest.mark.parametrize("value", [None, 0, 0.0])
def test_absent_or_zero_price_is_null(value: object) -> None:
    """An absent or zero price is stored as NULL."""
    assert rules.price_aed(value) is None


@pytest.mark.parametrize(
    "value",
    ["699", "69900", "", -1, -0.5, 699.5, float("nan"), float("inf"), True, 10**10, 10**30, [1]],
)
def test_bad_prices_are_rejected(value: object) -> None:
    """Text, negative, fractional, non-finite, boolean and unstorably large prices are rejected."""
    with pytest.raises(InvalidItemError, match="price"):
        rules.price_aed(value)


@given(st.integers(min_value=-(10**30), max_value=10**30))
def test_price_accepts_exactly_the_storable_range(fils: int) -> None:
    """Whole numbers are accepted exactly when 0 <= fils <= the DECIMAL(10,2) limit."""
    if 0 <= fils <= rules.MAX_PRICE_MINOR:
        rules.price_aed(fils)
    else:
        with pytest.raises(InvalidItemError):
            rules.price_aed(fils)


@given(catalog_texts())
def test_clean_text_is_always_storable(text: str) -> None:
    """Cleaned text has no NUL, encodes as UTF-8, and equals the input when that was storable."""
    cleaned = rules.clean_text(text)
    assert "\x00" not in cleaned
    cleaned.encode("utf-8")
    try:
        text.encode("utf-8")
        storable = "\x00" not in text
    except UnicodeEncodeError:
        storable = False
    if storable:
        assert cleaned == text


@given(
    st.recursive(
        catalog_texts() | st.integers() | st.none(),
        lambda c: st.lists(c) | st.dictionaries(catalog_texts(), c),
        max_leaves=10,
    )
)
def test_clean_json_dumps_to_storable_json(value: object) -> None:
    """Any JSON value, cleaned, serialises to text PostgreSQL jsonb accepts (no NUL, UTF-8)."""
    text = json.dumps(rules.clean_json(value), ensure_ascii=False)
    text.encode("utf-8")
    assert "\\u0000" not in text.replace("\\\\", "")


@given(
    st.integers(min_value=0, max_value=10**99)
    | st.from_regex(r"[A-Za-z0-9-]{1,100}", fullmatch=True)
)
def test_external_id_is_str_of_id(value: int | str) -> None:
    """A whole-number or text id becomes ``str(id)`` when it fits the column."""
    if len(str(value)) <= rules.MAX_EXTERNAL_ID_LENGTH:
        assert rules.external_id(value) == str(value)
    else:
        with pytest.raises(InvalidItemError):
            rules.external_id(value)


@pytest.mark.parametrize("value", [None, "", "   ", True, 1.5, [1], {"a": 1}, "x" * 101])
def test_bad_ids_are_rejected(value: object) -> None:
    """Missing, blank, boolean, fractional, structured and over-long ids are rejected."""
    with pytest.raises(InvalidItemError):
        rules.external_id(value)


@given(st.lists(st.sampled_from(["XS", "S", "M", "L", "XL", " ", "", "36", "EU 38"]), max_size=8))
def test_size_string_and_list_agree(names: list[str]) -> None:
    """``"XS, S"`` and ``["XS", "S"]`` give the same sizes: stripped, no blanks, no repeats."""
    from_text = rules.size_list(", ".join(names))
    from_list = rules.size_list(names)
    assert from_text == from_list
    assert len(set(from_text)) == len(from_text)
    assert all(s and s == s.strip() for s in from_text)


@given(catalog_texts())
def test_short_text_fits_the_column(text: str) -> None:
    """A colour is cut to 100 characters at most and stays storable."""
    result = rules.short_text(text)
    if result is not None:
        assert len(result) <= rules.MAX_SHORT_TEXT_LENGTH
        result.encode("utf-8")
