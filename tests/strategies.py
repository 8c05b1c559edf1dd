"""Hypothesis strategies shared by the property tests (add yours with a precise edit)."""

from __future__ import annotations

import io

import attrs
from hypothesis import strategies as st
from PIL import Image

from undecat.domain.models import BRANDS, Product
from undecat.domain.status import ImageStatus, SyncStatus, XimilarStatus

# --- Photos (collage builder) ----------------------------------------------------------------

#: How a photo is stored: its mode and the format that can hold that mode losslessly (or,
#: for "JPEG", at quality 95 without chroma subsampling, the way the CDNs serve photos).
PHOTO_KINDS: tuple[tuple[str, str], ...] = (
    ("RGB", "JPEG"),
    ("L", "JPEG"),
    ("RGB", "PNG"),
    ("RGBA", "PNG"),
    ("LA", "PNG"),
    ("L", "PNG"),
    ("1", "PNG"),
    ("P", "PNG"),
    ("P+transparency", "PNG"),
    ("I;16", "PNG"),
    ("CMYK", "TIFF"),
    ("CMYK", "JPEG"),
)

#: EXIF orientation -> the transposition that *stores* an upright picture under that tag
#: (the inverse of what a viewer applies). From the EXIF standard: 6 means "rotate 90
#: degrees clockwise to view", so the stored pixels are the upright ones turned counter-
#: clockwise, and so on.
STORED_AS: dict[int, Image.Transpose | None] = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


@attrs.frozen
class Photo:
    """An encoded test photo and what it must look like: upright, RGB, on white."""

    data: bytes = attrs.field(repr=False)
    visual: Image.Image = attrs.field(repr=False, eq=False)
    mode: str
    format: str
    orientation: int
    width: int  # upright
    height: int

    @property
    def lossy(self) -> bool:
        """Whether the stored photo only approximates ``visual`` (a JPEG)."""
        return self.format == "JPEG"


def _smooth(draw: st.DrawFn, mode: str, size: tuple[int, int]) -> Image.Image:
    """A smooth random picture (bilinear blow-up of a 2 x 2 or 3 x 3 grid of colours)."""
    grid = draw(st.integers(2, 3))
    bands = len(mode)
    values = draw(
        st.lists(
            st.tuples(*[st.integers(0, 255)] * bands), min_size=grid * grid, max_size=grid * grid
        )
    )
    small = Image.new(mode, (grid, grid))
    small.putdata([v[0] for v in values] if bands == 1 else values)
    return small.resize(size, Image.Resampling.BILINEAR)


def _white(image: Image.Image) -> Image.Image:
    """``image`` (with alpha) composited over white, the reference way."""
    rgba = image.convert("RGBA")
    return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert(
        "RGB"
    )


@st.composite
def photos(
    draw: st.DrawFn,
    *,
    min_side: int = 1,
    max_side: int = 40,
    kinds: tuple[tuple[str, str], ...] = PHOTO_KINDS,
) -> Photo:
    """A photo of a random size, mode, storage format and EXIF orientation."""
    width = draw(st.integers(min_side, max_side))
    height = draw(st.integers(min_side, max_side))
    mode, fmt = draw(st.sampled_from(kinds))
    orientation = draw(st.integers(1, 8))
    size = (width, height)
    if mode in ("RGBA", "LA"):
        stored = _smooth(draw, "RGBA", size).convert(mode)
        visual = _white(stored)
    elif mode == "I;16":
        grey = _smooth(draw, "L", size)
        # 16-bit values whose top byte is the 8-bit grey: that grey is what must show.
        stored = Image.new("I;16", size)
        stored.putdata([v * 257 for v in grey.tobytes()])
        visual = grey.convert("RGB")
    elif mode in ("P", "P+transparency"):
        stored = _smooth(draw, "RGB", size).quantize(colors=draw(st.integers(2, 16)))
        if mode == "P+transparency":
            stored.info["transparency"] = draw(st.integers(0, len(stored.getcolors() or []) - 1))
            visual = _white(stored.convert("RGBA"))
        else:
            visual = stored.convert("RGB")
    elif mode == "1":
        stored = _smooth(draw, "L", size).convert("1")
        visual = stored.convert("RGB")
    elif mode == "CMYK":
        rgb = _smooth(draw, "RGB", size)
        stored = rgb.convert("CMYK")
        visual = rgb  # Pillow's CMYK conversion without a profile is exact both ways
    else:
        stored = _smooth(draw, mode, size)
        visual = stored.convert("RGB")
    transpose = STORED_AS[orientation]
    on_disk = stored if transpose is None else stored.transpose(transpose)
    if "transparency" in stored.info:
        on_disk.info["transparency"] = stored.info["transparency"]
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    options: dict[str, object] = {"exif": exif.tobytes()}
    if fmt == "JPEG":
        options.update(quality=95, subsampling=0)
    if "transparency" in on_disk.info:
        options["transparency"] = on_disk.info["transparency"]
    on_disk.save(buffer, fmt, **options)
    return Photo(
        data=buffer.getvalue(),
        visual=visual,
        mode=mode,
        format=fmt,
        orientation=orientation,
        width=width,
        height=height,
    )


# --- Object keys (object store) ----------------------------------------------------------------

#: Ids that have broken key schemes elsewhere: traversal, separators, escapes of our own
#: rule, percent-encoding, control and invisible characters, the empty id.
TRICKY_IDS: tuple[str, ...] = (
    "",
    ".",
    "..",
    "../..",
    "/",
    "a/b",
    "a\\b",
    "~",
    "~2F",
    "~~",
    "%2F",
    "%2e%2e",
    " ",
    "\x00",
    "\n",
    "\x7f",
    "\u200b",
    "\ud800",
    "é",
    "e\u0301",
    "495689099",
    "AB-12_cd",
)


def external_ids() -> st.SearchStrategy[str]:
    """Any text an external id (or brand, or user id) might hold, lone surrogates included."""
    return st.one_of(
        st.sampled_from(TRICKY_IDS),
        st.from_regex(r"[A-Za-z0-9_-]{1,20}", fullmatch=True),
        st.text(st.characters(exclude_categories=()), max_size=30),
        st.lists(st.sampled_from(TRICKY_IDS), max_size=4).map("".join),
    )


# --- Catalog items (collect stage) ---------------------------------------------------------

#: Photo URLs the collect rules must keep (``{width}`` filled in), and ones they must drop.
VALID_PHOTO_URLS: tuple[str, ...] = (
    *(f"https://static.zara.net/photos/02086797800-{i}.jpg?ts=1&w={{width}}" for i in range(9)),
    "http://static.bershka.net/4/photos/x.jpg",
    "  https://static.oysho.net/p/1.jpg?w={width}  ",
    "HTTPS://STATIC.ZARA.NET/UPPER.JPG",
)
INVALID_PHOTO_URLS: tuple[object, ...] = (
    "javascript:alert(1)",
    "JavaScript:alert(document.cookie)//https://static.zara.net/a.jpg",
    "/photos/relative.jpg",
    "photos/relative.jpg",
    "//static.zara.net/protocol-relative.jpg",
    "data:image/png;base64,iVBORw0KGgo=",
    "ftp://static.zara.net/a.jpg",
    "https://",
    "https:///no-host.jpg",
    "https://static.zara.net/a b.jpg",
    "",
    "   ",
    None,
    42,
    {"url": "https://static.zara.net/in-a-dict.jpg"},
)

#: Names that must be stored exactly as given.
UNICODE_NAMES: tuple[str, ...] = (
    "فستان مطرز بأكمام طويلة",
    "سترة 👗✨",
    "ZW COLLECTION ASYMMETRIC BLAZER",
    "Blusa de lino — Édition été",
    "日本語のドレス",
    "e\u0301te\u0301",
)


def xmedia_lists() -> st.SearchStrategy[list[list[object]]]:
    """The ``xmedia`` lists of a product's colours, mixing usable and unusable URLs."""
    entry = st.sampled_from(VALID_PHOTO_URLS + INVALID_PHOTO_URLS)
    return st.lists(st.lists(entry, max_size=9), max_size=4)


def catalog_texts() -> st.SearchStrategy[str]:
    """Any text a catalog field may hold: NUL, lone surrogates, Arabic, emoji included."""
    return st.one_of(
        st.text(st.characters(exclude_categories=()), max_size=120),
        st.sampled_from(UNICODE_NAMES),
        st.lists(st.sampled_from(["a", "\x00", "\ud800", "👗", "ب", " "]), max_size=12).map(
            "".join
        ),
    )


def zara_item(external_id: int = 512913640, **changes: object) -> dict[str, object]:
    """One dataset item in the document's datasaurus/zara format (with ``changes`` applied)."""
    item: dict[str, object] = {
        "id": external_id,
        "reference": f"{external_id:011d}-V2026",
        "brand": "Zara",
        "name": "ZW COLLECTION ASYMMETRIC BLAZER",
        "description": "Blazer with a notched lapel collar and long sleeves.",
        "price": 69900,
        "category": "woman-outerwear-padded",
        "colors": "Black",
        "sizes": "XS, S, M, L",
        "detailedComposition": {
            "parts": [
                {
                    "description": "OUTER SHELL",
                    "components": [{"material": "polyester", "percentage": "100%"}],
                },
                {
                    "description": "LINING",
                    "components": [
                        {"material": "viscose", "percentage": "60%"},
                        {"material": "polyester", "percentage": "40%"},
                    ],
                },
            ]
        },
        "colorsSizesImagesJSON": [
            {
                "id": "800",
                "name": "Black",
                "productId": external_id + 1,
                "xmedia": [
                    f"https://static.zara.net/photos/{external_id}-800-{n}.jpg?w={{width}}"
                    for n in ("p", "e1", "e2", "e3")
                ],
                "sizes": [
                    {
                        "name": "XS",
                        "sku": external_id + 10,
                        "availability": "in_stock",
                        "price": 69900,
                    },
                    {
                        "name": "S",
                        "sku": external_id + 11,
                        "availability": "low_on_stock",
                        "price": 69900,
                    },
                ],
            }
        ],
    }
    item.update(changes)
    return item


@st.composite
def zara_items(draw: st.DrawFn) -> dict[str, object]:
    """A valid datasaurus/zara item with random id, name, price, sizes and photos."""
    external_id = draw(st.integers(min_value=1, max_value=10**12))
    colours = draw(
        st.lists(
            st.lists(st.sampled_from(VALID_PHOTO_URLS), min_size=1, max_size=7),
            min_size=1,
            max_size=3,
        )
    )
    return zara_item(
        external_id,
        name=draw(
            st.sampled_from(UNICODE_NAMES) | st.from_regex(r"[A-Z][A-Za-z ]{0,40}", fullmatch=True)
        ),
        price=draw(st.none() | st.integers(min_value=0, max_value=10**10 - 1)),
        sizes=", ".join(draw(st.lists(st.sampled_from(["XS", "S", "M", "L", "XL"]), unique=True))),
        colorsSizesImagesJSON=[
            {"id": str(n), "name": f"Colour {n}", "xmedia": media, "sizes": []}
            for n, media in enumerate(colours)
        ],
    )


# --- Ximilar selection --------------------------------------------------------------------------


@st.composite
def pilot_products(draw: st.DrawFn, *, max_photos: int = 6) -> Product:
    """A pilot product with stored photos, never sent to Ximilar yet."""
    brand = draw(st.sampled_from(BRANDS))
    external_id = draw(st.from_regex(r"[0-9A-Za-z/ -]{1,12}", fullmatch=True))
    count = draw(st.integers(min_value=0, max_value=max_photos))
    sources = tuple(
        f"https://static.{brand}.net/{external_id}/{n}-{draw(st.integers(0, 9))}.jpg"
        for n in range(count)
    )
    return Product(
        id=draw(st.integers(min_value=1, max_value=10**9)),
        source=f"apify_{brand}",
        external_id=external_id,
        brand=brand,
        name=draw(st.none() | st.text(max_size=20)),
        category=draw(st.none() | st.sampled_from(["woman-dresses", "man-shirts"])),
        price=draw(st.none() | st.decimals(min_value=0, max_value=99999, places=2)),
        original_image_urls=sources,
        image_urls=tuple(
            f"http://s3.local/unde-images/originals/{brand}/{external_id}/{n + 1}.jpg"
            for n in range(count)
        ),
        collage_url=None,
        image_status=ImageStatus.UPLOADED,
        ximilar_status=XimilarStatus.PENDING,
        sync_status=SyncStatus.PENDING,
        index_scope="pilot",
        ximilar_synced_urls=(),
        ximilar_target_count=draw(st.integers(min_value=0, max_value=max_photos + 1)),
    )
