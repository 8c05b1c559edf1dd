"""Colour management and PNG tRNS transparency, the same in photo validation and in collages."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageCms

from tests.icc_profiles import ADOBE_RGB, TIFF_RGB
from undecat.adapters.imaging.collage import PillowCollageBuilder
from undecat.adapters.imaging.validate import PhotoValidator

VALIDATOR = PhotoValidator()
BUILDER = PillowCollageBuilder(quality=100)
RAW = (200, 60, 40)  # the pixel values as stored in the file, in the file's colour space
KEY = (0, 255, 0)  # the tRNS key colour of the RGB test image (like Pillow's rgb_trns.png)
WHITE = (255, 255, 255)


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _srgb_of(profile: bytes, pixel: tuple[int, int, int]) -> tuple[int, ...]:
    """What LittleCMS makes of ``pixel`` in ``profile``, in sRGB: the reference."""
    source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
    flat = Image.new("RGB", (1, 1), pixel)
    converted = ImageCms.profileToProfile(
        flat, source, ImageCms.createProfile("sRGB"), outputMode="RGB"
    )
    assert converted is not None
    return tuple(converted.getpixel((0, 0)))  # type: ignore[arg-type]


def _close(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 4) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


def _stored_pixel(data: bytes, xy: tuple[int, int] = (8, 8)) -> tuple[int, ...]:
    with Image.open(io.BytesIO(data)) as image:
        return tuple(image.convert("RGB").getpixel(xy))  # type: ignore[arg-type]


def _collage_pixel(photo: bytes, xy: tuple[int, int] = (8, 8)) -> tuple[int, ...]:
    return _stored_pixel(BUILDER.build([photo]), xy)


@pytest.mark.parametrize(
    ("profile", "fmt"), [(ADOBE_RGB, "JPEG"), (TIFF_RGB, "JPEG"), (ADOBE_RGB, "PNG")]
)
def test_non_srgb_profile_is_converted_to_srgb_by_both_paths(profile: bytes, fmt: str) -> None:
    """A photo tagged Adobe RGB or "TIFF RGB" is stored and collaged in sRGB, not as raw pixels."""
    photo = _encode(Image.new("RGB", (16, 16), RAW), fmt, quality=100, icc_profile=profile)
    expected = _srgb_of(profile, RAW)
    assert not _close(expected, RAW, tolerance=15)  # the test would prove nothing otherwise
    stored = VALIDATOR.check(photo, f"image/{fmt.lower()}")
    assert stored.converted
    assert _close(_stored_pixel(stored.content), expected)
    assert _close(_collage_pixel(photo), expected)


def test_srgb_tagged_and_untagged_jpegs_are_kept_byte_for_byte() -> None:
    """A JPEG already in sRGB (tagged or not) is stored exactly as it came."""
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    for options in ({"icc_profile": srgb}, {}):
        photo = _encode(Image.new("RGB", (16, 16), RAW), "JPEG", quality=95, **options)
        stored = VALIDATOR.check(photo, "image/jpeg")
        assert not stored.converted
        assert stored.content == photo


def test_cmyk_jpeg_is_converted_by_both_paths_alike() -> None:
    """CMYK becomes RGB the same way in the stored photo and in the collage."""
    photo = _encode(Image.new("CMYK", (16, 16), (0, 200, 200, 30)), "JPEG", quality=100)
    stored = VALIDATOR.check(photo, "image/jpeg")
    assert stored.converted
    assert _close(_stored_pixel(stored.content), _collage_pixel(photo))


def _rgb_trns() -> bytes:
    """An RGB PNG whose left half is the tRNS key colour (as Pillow's rgb_trns.png)."""
    image = Image.new("RGB", (16, 16), (40, 90, 160))
    image.paste(KEY, (0, 0, 8, 16))
    return _encode(image, "PNG", transparency=KEY)


def _i16_trns() -> bytes:
    """A 16-bit grey PNG whose left half is the tRNS key value (as Pillow's i_trns.png)."""
    image = Image.new("I;16", (16, 16), 40000)
    image.paste(0, (0, 0, 8, 16))
    return _encode(image, "PNG", transparency=0)


@pytest.mark.parametrize(
    ("photo", "kept"),
    [(_rgb_trns(), (40, 90, 160)), (_i16_trns(), (156, 156, 156))],
    ids=["rgb_trns", "i16_trns"],
)
def test_trns_colour_key_is_composited_over_white(photo: bytes, kept: tuple[int, ...]) -> None:
    """The keyed-out half is white (not green, not black) in the stored photo and the collage."""
    with Image.open(io.BytesIO(photo)) as decoded:
        assert "transparency" in decoded.info  # the tRNS chunk is really there
    stored = VALIDATOR.check(photo, "image/png").content
    for pixels in (stored, BUILDER.build([photo])):
        assert _close(_stored_pixel(pixels, (2, 8)), WHITE)
        assert _close(_stored_pixel(pixels, (13, 8)), kept)
