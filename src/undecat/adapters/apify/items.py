"""The Apify JSON boundary: dataset items (datasaurus/zara format) -> :class:`ProductDraft`.

msgspec reads the wire shape into small frozen structs, strictly: a field of the wrong JSON
type (``colorsSizesImagesJSON`` that is not a list, a name that is a number) rejects that
item with the path of the offending field, rather than being coerced. The pure rules of
:mod:`undecat.domain.rules` then turn the wire values into stored values.

The six Inditex brands share this format (until shown otherwise), so every brand gets the
same mapper; :func:`mapper_for` is the one place a brand-specific mapper would be plugged in.

Decisions (where the source document is silent):

* ``sizes`` is the item's comma string (``"XS, S, M, L"``), the brand's full size range,
  stored as a JSON list; the per-colour ``sizes`` lists carry stock (which the hourly
  availability poll tracks), so they are only used when the item has no ``sizes`` string.
* ``composition`` is ``detailedComposition`` rendered as readable text
  (``"OUTER SHELL: 100% polyester; LINING: 100% polyester"``).
* ``colour`` is the item's ``colors`` (or the colour names joined), cut to the column's 100
  characters; the whole item is kept in ``raw_data``.
* An item without one usable photo URL is rejected: no later stage can do anything with it.
* An item bigger than ``max_item_bytes`` (as compact UTF-8 JSON, default 1 MiB) is rejected.
  That encoding is made once per item and handed to the store in ``ProductDraft.raw_json``.
* An item that arrives as its own JSON bytes (``msgspec.Raw``: the Apify source splits each
  page into items without decoding them) is decoded once, straight into the wire structs,
  and its bytes are what the store writes. Anything that path does not take as it is (a
  field of the wrong type, a NUL or lone-surrogate escape, bytes that are not UTF-8, an
  item over the cap as sent, a number msgspec cannot hold) is decoded with ``json`` and
  goes the way of a decoded item (``msgspec.convert`` of the cleaned dict), so its draft or
  its rejection reason is the same whichever way it came.
* Work that repeats across a catalog is done once per distinct value: the text of a
  composition (kept as its JSON bytes when read) and the list of a size range.
* NUL characters and lone surrogates are removed from every string (PostgreSQL cannot store
  them), so one such item never breaks its batch.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

import attrs
import msgspec
import orjson

from undecat.domain import rules
from undecat.domain.models import BRANDS, ProductDraft, source_for
from undecat.errors import ConfigError, InvalidItemError

__all__ = [
    "DEFAULT_MAX_ITEM_BYTES",
    "InditexItemMapper",
    "ItemMapper",
    "UnreadableItem",
    "mapper_for",
]

#: Items larger than this (as JSON, UTF-8) are rejected; a normal item is a few kilobytes.
DEFAULT_MAX_ITEM_BYTES = 1024 * 1024

#: Maps one raw item to a draft, or raises :class:`~undecat.errors.InvalidItemError`.
ItemMapper = Callable[[Any], ProductDraft]


@attrs.frozen
class UnreadableItem:
    """Stands in for a dataset entry that could not even be decoded (a bad JSON line)."""

    reason: str


# The wire shape, read strictly by msgspec: a field of the wrong JSON type is refused with
# its path (``Expected `array | null`, got `str` - at `$.colorsSizesImagesJSON```), never
# coerced; keys the mapping does not use are ignored (they stay in raw_data).
class _JsonSize(msgspec.Struct, frozen=True):
    name: str | None = None


class _JsonColour(msgspec.Struct, frozen=True):
    name: str | None = None
    xmedia: list[Any] = msgspec.field(default_factory=list)
    sizes: list[_JsonSize] = msgspec.field(default_factory=list)


_RENAME = {"detailed_composition": "detailedComposition", "colours": "colorsSizesImagesJSON"}


class _JsonItem(msgspec.Struct, frozen=True, rename=_RENAME):
    id: Any = None
    name: str | None = None
    description: str | None = None
    price: Any = None
    category: str | None = None
    colors: str | None = None
    sizes: Any = None
    detailed_composition: Any = None
    colours: list[_JsonColour] | None = None


_NULL = msgspec.Raw(b"null")


class _SentItem(_JsonItem, frozen=True, rename=_RENAME):
    """An item read from its JSON bytes: the composition stays as its own bytes.

    Compositions repeat across a catalog (one fabric recipe, many products), so their text
    is rendered once per distinct JSON (:func:`_sent_composition`), not once per product.
    """

    detailed_composition: msgspec.Raw = _NULL


_decode_item = msgspec.json.Decoder(_SentItem).decode

#: Escapes of what PostgreSQL cannot store (NUL, UTF-16 surrogates): such an item is
#: decoded and cleaned the slow way. (A surrogate pair is a false alarm, and harmless.)
_UNSTORABLE = (b"\\u0000", b"\\ud", b"\\uD")


_convert = functools.partial(msgspec.convert, type=_JsonItem, strict=True)


def _composition(value: Any) -> str | None:
    """Render ``detailedComposition`` as text; an unknown shape is kept as compact JSON."""
    if value is None or value in ({}, []):
        return None
    if isinstance(value, str):
        return rules.clean_text(value).strip() or None
    parts = value.get("parts") if isinstance(value, dict) else None
    if not isinstance(parts, list):
        return rules.clean_text(json.dumps(value, ensure_ascii=False, separators=(",", ":")))
    rendered: list[str] = []
    for part in parts:
        if not isinstance(part, dict):
            continue
        label = part.get("description")
        body = _components(part.get("components"))
        areas = part.get("areas")
        if isinstance(areas, list):
            for area in areas:
                if isinstance(area, dict) and (text := _components(area.get("components"))):
                    name = area.get("description")
                    if isinstance(name, str) and name:
                        text = f"{name} {text}"
                    body = f"{body}, {text}" if body else text
        if body:
            rendered.append(f"{label}: {body}" if isinstance(label, str) and label else body)
    return rules.clean_text("; ".join(rendered)) or None


@functools.lru_cache(maxsize=4096)
def _sent_composition(data: bytes) -> str | None:
    """:func:`_composition` of ``detailedComposition`` as sent (its JSON), memoised."""
    return _composition(msgspec.json.decode(data))


def _components(value: Any) -> str:
    """``[{"percentage": "60%", "material": "viscose"}, ...]`` as ``60% viscose, ...``."""
    if not isinstance(value, list):
        return ""
    out = []
    for component in value:
        if isinstance(component, dict):
            percentage = _word(component.get("percentage"))
            material = _word(component.get("material"))
            if percentage is None:
                text = material or ""
            elif material is None:
                text = percentage
            else:
                text = f"{percentage} {material}"
            if text:
                out.append(text)
    return ", ".join(out)


def _word(value: object) -> str | None:
    """A percentage or material as shown: text stripped, a number as written; else None."""
    if isinstance(value, str):
        return value.strip() if value else None
    if isinstance(value, int):
        return str(value)
    return None


def _encode(value: Any) -> bytes:
    """Compact UTF-8 JSON of a decoded item; orjson, or the standard library where it refuses.

    orjson refuses integers beyond 64 bits and lone surrogates; ``json`` writes the former
    (and the caller cleans the latter before asking again).
    """
    try:
        return orjson.dumps(value)
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode(
            "utf-8", "surrogatepass"
        )


def _raw_data(item: dict[str, Any], max_bytes: int) -> tuple[dict[str, Any], bytes]:
    """Return the item as storable JSON and its one encoding, or reject it over the size cap.

    The item is encoded once; the store writes these bytes as they are. Only an item with a
    NUL character or a lone surrogate (PostgreSQL stores neither) is cleaned and encoded again.
    """
    try:
        data = orjson.dumps(item)
        dirty = b"\\u0000" in data  # JSON escapes NUL
    except (orjson.JSONEncodeError, TypeError):  # a lone surrogate, or an integer over 64 bits
        data, dirty = _encode(item), True
    if len(data) > max_bytes:
        raise InvalidItemError(
            f"item is {len(data):,} bytes as JSON, over the {max_bytes:,}-byte cap"
        )
    if not dirty:
        return item, data
    cleaned = rules.clean_json(item)
    return cleaned, _encode(cleaned)


@attrs.frozen
class InditexItemMapper:
    """Maps items of the datasaurus/zara format (shared by the Inditex brands) of ``brand``."""

    brand: str
    max_item_bytes: int = DEFAULT_MAX_ITEM_BYTES

    def __call__(self, item: Any) -> ProductDraft:
        """Return the draft of one raw item, or raise InvalidItemError with the reason."""
        if isinstance(item, msgspec.Raw):
            data = bytes(item)
            read = self._read(data)
            if read is not None:
                sent, composition = read
                external_id = rules.external_id(sent.id)
                try:
                    return self._draft(sent, composition, external_id, None, data)
                except InvalidItemError as exc:
                    raise InvalidItemError(str(exc), product=external_id) from exc
            item = _loaded(data)
        if isinstance(item, UnreadableItem):
            raise InvalidItemError(item.reason)
        if not isinstance(item, dict):
            raise InvalidItemError(f"item is {type(item).__name__}, not a JSON object")
        raw, encoded = _raw_data(item, self.max_item_bytes)
        external_id = rules.external_id(raw.get("id"))
        try:
            wire = _convert(raw)
        except msgspec.ValidationError as exc:
            raise InvalidItemError(f"malformed item: {exc}", product=external_id) from exc
        try:
            composition = _composition(wire.detailed_composition)
            return self._draft(wire, composition, external_id, raw, encoded)
        except InvalidItemError as exc:
            raise InvalidItemError(str(exc), product=external_id) from exc

    def _read(self, data: bytes) -> tuple[_SentItem, str | None] | None:
        """The item in the wire shape and its composition's text, or None: the slow way."""
        if len(data) > self.max_item_bytes:
            return None
        if b"\\u" in data and any(e in data for e in _UNSTORABLE):  # one scan if no escape
            return None
        if not data.isascii():  # msgspec checks the UTF-8 of the fields it reads only
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                return None
        try:
            sent = _decode_item(data)
            # Decoded here, so that what the decoder refuses in it (a number out of range)
            # sends the item the slow way too.
            return sent, _sent_composition(bytes(sent.detailed_composition))
        except msgspec.DecodeError:  # ValidationError included
            return None

    def _draft(
        self,
        wire: _JsonItem,
        composition: str | None,
        external_id: str,
        raw: dict[str, Any] | None,
        encoded: bytes,
    ) -> ProductDraft:
        name = (wire.name or "").strip()
        if not name:
            raise InvalidItemError("item has no name")
        colours = wire.colours or []
        photos = rules.photo_urls(colour.xmedia for colour in colours)
        if not photos:
            raise InvalidItemError("item has no usable photo URL (absolute http/https)")
        sizes = rules.size_list(wire.sizes)
        if not sizes:
            sizes = rules.size_list([s.name for c in colours for s in c.sizes if s.name])
        colour = wire.colors
        if colour is None and colours:
            colour = ", ".join(c.name for c in colours if c.name)
        return ProductDraft(
            source=source_for(self.brand),
            external_id=external_id,
            brand=self.brand,
            name=name,
            description=_optional_text(wire.description),
            price=rules.price_aed(wire.price),
            currency="AED",
            category=_optional_text(wire.category),
            colour=rules.short_text(colour),
            sizes=sizes,
            composition=composition,
            original_image_urls=photos,
            raw_data=raw,
            raw_json=encoded,
        )


def _loaded(data: bytes) -> Any:
    """An item's JSON bytes decoded as apify-client would (the standard library's ``json``)."""
    try:
        return json.loads(data)
    except ValueError as exc:  # bytes that are not UTF-8 (msgspec split the page as JSON)
        return UnreadableItem(f"item is not readable JSON: {exc}")


def _optional_text(value: str | None) -> str | None:
    if value is None:
        return None
    return value.strip() or None


def mapper_for(
    brand: str,
    *,
    max_item_bytes: int = DEFAULT_MAX_ITEM_BYTES,
    brands: tuple[str, ...] = BRANDS,
) -> ItemMapper:
    """Return the item mapper of ``brand``, one of ``brands`` (the configured ``BRANDS``).

    Every Inditex brand shares one format; a brand added by configuration uses it too.
    """
    if brand not in brands:
        raise ConfigError(f"unknown brand {brand!r}; expected one of {', '.join(brands)}")
    return InditexItemMapper(brand, max_item_bytes=max_item_bytes)
