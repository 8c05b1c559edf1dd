"""The Apify item mapping (datasaurus/zara format -> ProductDraft): properties and bad items."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.strategies import UNICODE_NAMES, zara_item, zara_items
from undecat.adapters.apify import UnreadableItem, mapper_for
from undecat.domain.models import BRANDS
from undecat.errors import ConfigError, InvalidItemError

zara = mapper_for("zara")


def test_document_example_maps_every_field() -> None:
    """The document's example item maps to every stored field as the issue describes."""
    item = zara_item()
    draft = zara(item)
    assert draft.source == "apify_zara"
    assert draft.brand == "zara"
    assert draft.external_id == "512913640"
    assert draft.name == "ZW COLLECTION ASYMMETRIC BLAZER"
    assert draft.price == Decimal("699.00")
    assert draft.currency == "AED"
    assert draft.category == "woman-outerwear-padded"
    assert draft.colour == "Black"
    assert draft.sizes == ("XS", "S", "M", "L")
    assert draft.description == "Blazer with a notched lapel collar and long sleeves."
    assert draft.composition == "OUTER SHELL: 100% polyester; LINING: 60% viscose, 40% polyester"
    assert draft.original_image_urls == tuple(
        f"https://static.zara.net/photos/512913640-800-{n}.jpg?w=1920"
        for n in ("p", "e1", "e2", "e3")
    )
    assert draft.raw_data == item


@given(zara_items())
def test_valid_items_keep_id_name_price_and_raw(item: dict[str, Any]) -> None:
    """Any valid item keeps str(id), its exact name, price ÷ 100 and itself as raw_data."""
    draft = zara(item)
    assert draft.external_id == str(item["id"])
    assert draft.name == item["name"]
    price = item["price"]
    assert draft.price == (Decimal(price) / 100 if price else None)
    assert draft.raw_data == item
    assert json.loads(json.dumps(draft.raw_data)) == item
    assert 1 <= len(draft.original_image_urls) <= 5 * len(item["colorsSizesImagesJSON"])
    assert list(draft.sizes) == [s for s in str(item["sizes"]).split(", ") if s]


@pytest.mark.parametrize("brand", BRANDS)
def test_every_brand_has_a_mapper_with_its_source(brand: str) -> None:
    """All six brands map the shared Inditex format into their own apify_<brand> source."""
    draft = mapper_for(brand)(zara_item())
    assert (draft.source, draft.brand) == (f"apify_{brand}", brand)


def test_unknown_brand_is_a_config_error() -> None:
    """Asking for the mapper of a brand we do not collect is a configuration error."""
    with pytest.raises(ConfigError, match="unknown brand"):
        mapper_for("primark")


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"id": None}, "no id"),
        ({"name": None}, "no name"),
        ({"name": "   "}, "no name"),
        ({"name": 12}, "name"),
        ({"price": "699.00"}, "text"),
        ({"price": -100}, "negative"),
        ({"price": 10**12}, "largest storable"),
        ({"price": 699.5}, "whole number"),
        ({"colorsSizesImagesJSON": "not a list"}, "colorsSizesImagesJSON"),
        ({"colorsSizesImagesJSON": {"id": "800"}}, "colorsSizesImagesJSON"),
        ({"colorsSizesImagesJSON": [{"xmedia": "https://x/y.jpg"}]}, "xmedia"),
        ({"colorsSizesImagesJSON": []}, "no usable photo"),
        ({"colorsSizesImagesJSON": None}, "no usable photo"),
        (
            {"colorsSizesImagesJSON": [{"xmedia": ["javascript:alert(1)", "/relative.jpg"]}]},
            "no usable photo",
        ),
        ({"sizes": {"XS": 1}}, "sizes"),
        ({"category": ["a", "b"]}, "category"),
    ],
)
def test_bad_items_are_rejected_with_a_reason(changes: dict[str, Any], reason: str) -> None:
    """Each malformed item is refused with an InvalidItemError naming what is wrong."""
    with pytest.raises(InvalidItemError, match=reason) as caught:
        zara(zara_item(**changes))
    if changes.get("id", 1) is not None:
        assert caught.value.product == "512913640"


def test_non_objects_and_unreadable_lines_are_rejected() -> None:
    """A dataset entry that is not an object, or could not be decoded, is one bad item."""
    with pytest.raises(InvalidItemError, match="not a JSON object"):
        zara([1, 2])
    with pytest.raises(InvalidItemError, match="line 3"):
        zara(UnreadableItem("line 3 is not valid JSON"))


def test_bad_urls_are_dropped_and_good_ones_kept() -> None:
    """javascript: and relative URLs are dropped from xmedia; the item keeps its good photos."""
    item = zara_item(
        colorsSizesImagesJSON=[
            {"xmedia": ["javascript:alert(1)", "/a.jpg", "https://static.zara.net/ok.jpg"]}
        ]
    )
    assert zara(item).original_image_urls == ("https://static.zara.net/ok.jpg",)


def test_oversized_item_is_rejected() -> None:
    """An item of 5 MB is over the cap and rejected; a small cap shows the limit is a setting."""
    huge = zara_item(description="x" * (5 * 1024 * 1024))
    with pytest.raises(InvalidItemError, match="over the 1,048,576-byte cap"):
        zara(huge)
    with pytest.raises(InvalidItemError, match="cap"):
        mapper_for("zara", max_item_bytes=100)(zara_item())


@pytest.mark.parametrize("name", UNICODE_NAMES)
def test_non_ascii_names_are_kept_intact(name: str) -> None:
    """Arabic, emoji and accented names come through unchanged."""
    assert zara(zara_item(name=name)).name == name


def test_nul_and_lone_surrogates_are_removed_everywhere() -> None:
    """NUL and lone surrogates, which PostgreSQL cannot store, are removed from fields and raw."""
    item = zara_item(
        name="Blazer\x00 one", description="bad \ud800 text", extra={"k\x00": ["v\x00"]}
    )
    draft = zara(item)
    assert draft.name == "Blazer one"
    assert draft.description == "bad \ufffd text"
    assert draft.raw_data is not None
    assert draft.raw_data["extra"] == {"k": ["v"]}
    json.dumps(draft.raw_data, ensure_ascii=False).encode("utf-8")


def test_sizes_fall_back_to_the_colours_and_colour_to_their_names() -> None:
    """Without a sizes string the per-colour size names are used; without colors, colour names."""
    item = zara_item()
    del item["sizes"], item["colors"]
    draft = zara(item)
    assert draft.sizes == ("XS", "S")
    assert draft.colour == "Black"


def test_long_colour_is_cut_to_the_column() -> None:
    """A colour list longer than VARCHAR(100) is cut (the full text stays in raw_data)."""
    colours = ", ".join(f"Colour number {n}" for n in range(20))
    draft = zara(zara_item(colors=colours))
    assert draft.colour is not None
    assert len(draft.colour) <= 100
    assert draft.colour.endswith("…")
    assert draft.raw_data is not None
    assert draft.raw_data["colors"] == colours


def test_unknown_composition_shape_is_kept_as_text() -> None:
    """A composition that is plain text, or an unknown structure, still becomes readable text."""
    assert zara(zara_item(detailedComposition="100% cotton")).composition == "100% cotton"
    odd = zara(zara_item(detailedComposition={"materials": ["cotton"]})).composition
    assert odd == '{"materials":["cotton"]}'
    assert zara(zara_item(detailedComposition=None)).composition is None


# --- Items read straight from their JSON bytes (the Apify source's pages) -------------------

#: JSON values of every type, for fields the mapper reads.
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=6,
)
_FIELDS = (
    "id", "name", "description", "price", "category", "colors", "sizes",
    "detailedComposition", "colorsSizesImagesJSON",
)  # fmt: skip


@st.composite
def odd_items(draw: st.DrawFn) -> dict[str, Any]:
    """A valid item with some fields (or some colour's fields) replaced by any JSON value."""
    item: dict[str, Any] = draw(zara_items())
    for field in draw(st.lists(st.sampled_from(_FIELDS), max_size=3, unique=True)):
        item[field] = draw(_json_values | st.sampled_from(["", "  ", "a\x00b", "x\ud800y"]))
    colours = item.get("colorsSizesImagesJSON")
    if isinstance(colours, list) and colours and isinstance(colours[0], dict):
        key = draw(st.sampled_from(["name", "xmedia", "sizes"]))
        colours[0][key] = draw(_json_values | st.just([{"name": 1}]) | st.just([{"name": "M"}]))
    return item


def _sent(item: object, *, ascii_only: bool) -> msgspec.Raw:
    """``item`` as the Apify API sends it: UTF-8 JSON (non-ASCII escaped or not)."""
    text = json.dumps(item, ensure_ascii=ascii_only)
    return msgspec.Raw(text.encode("utf-8", "surrogatepass"))


def _outcome(item: object) -> tuple[object, ...]:
    """What the mapper makes of ``item``: the draft and its stored JSON, or the rejection."""
    try:
        draft = zara(item)
    except InvalidItemError as exc:
        return ("rejected", str(exc), exc.product)
    assert draft.raw_json is not None
    return ("draft", draft, json.loads(draft.raw_json))


@settings(max_examples=300)
@given(odd_items(), st.booleans())
def test_an_item_read_from_its_json_maps_as_the_decoded_item_does(
    item: dict[str, Any], ascii_only: bool
) -> None:
    """Draft, stored JSON, or rejection reason: the same whether the item came decoded or not."""
    sent = _sent(item, ascii_only=ascii_only)
    assert _outcome(sent) == _outcome(json.loads(bytes(sent)))


def test_a_clean_item_is_stored_as_the_bytes_it_came_in() -> None:
    """The fast path: the item's own bytes are what the store writes; no dict is kept."""
    sent = _sent(zara_item(), ascii_only=False)
    draft = zara(sent)
    assert draft.raw_json == bytes(sent)
    assert draft.raw_data is None
    assert draft == zara(zara_item())


def test_a_composition_is_rendered_once_per_distinct_json() -> None:
    """Products sharing a composition share its text; one the decoder cannot hold goes slow."""
    shared = [zara(_sent(zara_item(n), ascii_only=False)) for n in (1, 2)]
    assert shared[0].composition is shared[1].composition
    other = zara(_sent(zara_item(detailedComposition="100% linen"), ascii_only=False))
    assert other.composition == "100% linen"
    # 1e999 is valid JSON that msgspec will not decode (out of range): the decoded way.
    text = json.dumps(zara_item()).replace('"100%"', "1e999")
    assert zara(msgspec.Raw(text.encode())) == zara(json.loads(text))
    assert zara(msgspec.Raw(text.encode())).composition == (
        "OUTER SHELL: polyester; LINING: 60% viscose, 40% polyester"
    )


def test_items_the_fast_path_leaves_go_the_decoded_way() -> None:
    """NUL, lone surrogates, a field of the wrong type, over the cap, not an object."""
    dirty = zara(_sent(zara_item(name="Blazer\x00 one", description="bad \ud800"), ascii_only=True))
    assert (dirty.name, dirty.description) == ("Blazer one", "bad \ufffd")
    assert dirty.raw_json is not None
    assert b"\\u0000" not in dirty.raw_json
    with pytest.raises(InvalidItemError, match="name") as caught:
        zara(_sent(zara_item(name=12), ascii_only=False))
    assert caught.value.product == "512913640"
    with pytest.raises(InvalidItemError, match="over the 1,048,576-byte cap"):
        zara(_sent(zara_item(description="x" * (1024 * 1024)), ascii_only=False))
    with pytest.raises(InvalidItemError, match="not a JSON object"):
        zara(msgspec.Raw(b"[1, 2]"))
    with pytest.raises(InvalidItemError, match="not readable JSON"):
        zara(msgspec.Raw(b'{"id": 1, "name": '))
    # Bytes that are not UTF-8, in a field the wire shape does not read: refused, not stored.
    sent = bytes(_sent(zara_item(), ascii_only=True))
    with pytest.raises(InvalidItemError, match="not readable JSON"):
        zara(msgspec.Raw(sent.replace(b'"reference": "', b'"reference": "\xff')))
