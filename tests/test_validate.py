"""Photo validation: what is refused, what is stored as it came, what is converted to JPEG."""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from tests.photo_samples import (
    HTML_PAGE,
    alpha_png,
    cmyk_jpeg,
    encode,
    noisy_jpeg,
    png_header_only,
    rgb_jpeg,
    webp,
)
from undecat.adapters.imaging.validate import PhotoValidator
from undecat.errors import PhotoError


@pytest.fixture
def validator() -> PhotoValidator:
    return PhotoValidator()


def test_rgb_jpeg_is_stored_byte_for_byte(validator: PhotoValidator) -> None:
    """A valid RGB JPEG comes back as the very same bytes, served as image/jpeg."""
    data = rgb_jpeg()
    photo = validator.check(data, "image/jpeg")
    assert photo.content == data
    assert photo.content_type == "image/jpeg"
    assert (photo.width, photo.height, photo.converted) == (64, 48, False)


def test_html_page_with_status_200_is_refused(validator: PhotoValidator) -> None:
    """A captcha page served as a photo is refused and named an HTML page."""
    with pytest.raises(PhotoError, match="HTML page"):
        validator.check(HTML_PAGE, "image/jpeg")


def test_html_content_type_without_markup_start_is_refused(validator: PhotoValidator) -> None:
    """A text/html body that is not an image is reported as an HTML page too."""
    with pytest.raises(PhotoError, match="HTML page"):
        validator.check(b"   Access denied", "text/html; charset=utf-8")


def test_truncated_jpeg_is_refused(validator: PhotoValidator) -> None:
    """A JPEG cut short is refused as broken, not stored half grey."""
    data = noisy_jpeg()
    with pytest.raises(PhotoError, match="broken image"):
        validator.check(data[: len(data) // 2], "image/jpeg")


def test_zero_bytes_are_refused(validator: PhotoValidator) -> None:
    """An empty body is refused with a message saying so."""
    with pytest.raises(PhotoError, match="empty"):
        validator.check(b"", "image/jpeg")


def test_random_bytes_are_refused(validator: PhotoValidator) -> None:
    """Bytes that are no image format are refused."""
    with pytest.raises(PhotoError, match="not an image"):
        validator.check(b"\x00\x01garbage" * 50, "application/octet-stream")


def test_30000_by_30000_png_is_refused_from_its_header(validator: PhotoValidator) -> None:
    """A PNG claiming 30,000 x 30,000 pixels is refused as a decompression bomb, undecoded."""
    with pytest.raises(PhotoError, match="decompression bomb"):
        validator.check(png_header_only(30_000, 30_000), "image/png")


def test_pixel_limit_refuses_a_real_image_above_it() -> None:
    """A decodable image above the configured pixel limit is refused."""
    data = encode(Image.new("RGB", (200, 200), "white"), "PNG")
    with pytest.raises(PhotoError, match="more than 10000 pixels"):
        PhotoValidator(max_pixels=10_000).check(data, "image/png")


def test_cmyk_jpeg_becomes_rgb_jpeg(validator: PhotoValidator) -> None:
    """A CMYK JPEG is converted to an RGB JPEG with the same colours (roughly)."""
    photo = validator.check(cmyk_jpeg(), "image/jpeg")
    assert photo.converted
    with Image.open(io.BytesIO(photo.content)) as out:
        assert (out.format, out.mode, out.size) == ("JPEG", "RGB", (40, 30))
        red, green, blue = out.getpixel((20, 15))  # type: ignore[misc]
        assert red > 200
        assert max(green, blue) < 60


def test_png_with_alpha_is_flattened_on_white(validator: PhotoValidator) -> None:
    """Transparent pixels of a PNG become white in the stored JPEG, not black."""
    photo = validator.check(alpha_png(), "image/png")
    with Image.open(io.BytesIO(photo.content)) as out:
        assert out.mode == "RGB"
        assert min(out.getpixel((35, 10))) > 240  # type: ignore[arg-type]
        assert out.getpixel((5, 10))[2] > 200  # type: ignore[index]


def test_webp_becomes_jpeg(validator: PhotoValidator) -> None:
    """A WebP photo is stored as a JPEG of the same size."""
    photo = validator.check(webp(), "image/webp")
    assert photo.content.startswith(b"\xff\xd8")
    assert (photo.width, photo.height, photo.source_format) == (50, 70, "WEBP")


def test_eps_is_not_opened(validator: PhotoValidator) -> None:
    """PostScript (which Pillow would hand to Ghostscript) is not among the formats read."""
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
    with pytest.raises(PhotoError, match="not an image"):
        validator.check(eps, "application/postscript")


_MODES = st.sampled_from(["RGB", "RGBA", "L", "P", "CMYK", "LA"])
_FORMATS = st.sampled_from(["PNG", "WEBP", "JPEG", "GIF"])
_COMPATIBLE = {
    "PNG": {"RGB", "RGBA", "L", "P", "LA"},
    "WEBP": {"RGB", "RGBA"},
    "JPEG": {"RGB", "L", "CMYK"},
    "GIF": {"P", "L"},
}


@given(
    width=st.integers(1, 80),
    height=st.integers(1, 80),
    mode=_MODES,
    fmt=_FORMATS,
    colour=st.integers(0, 255),
)
def test_every_accepted_photo_is_an_rgb_jpeg_of_the_same_size(
    width: int, height: int, mode: str, fmt: str, colour: int
) -> None:
    """Whatever format and colour model arrives, what is stored is an RGB JPEG of its size."""
    if mode not in _COMPATIBLE[fmt]:
        mode = "RGB" if fmt != "GIF" else "P"
    image = Image.new(mode, (width, height), colour if mode in ("L", "P") else None)
    data = encode(image, fmt)
    photo = PhotoValidator().check(data, f"image/{fmt.lower()}")
    with Image.open(io.BytesIO(photo.content)) as out:
        assert (out.format, out.mode, out.size) == ("JPEG", "RGB", (width, height))
    assert photo.content_type == "image/jpeg"
    assert (photo.content == data) == (fmt == "JPEG" and mode == "RGB")
