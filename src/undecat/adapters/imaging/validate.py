"""Is this a photo we can store? Validation (and conversion to JPEG) with Pillow.

A fetched body is accepted only if Pillow decodes it completely, as one of the formats the
CDNs serve (JPEG, PNG, WebP, GIF, AVIF; never EPS or the other plug-ins that call out to
other programs), within ``MAX_PHOTO_PIXELS`` (decompression bombs are refused from the
header, before any pixel is decoded). An HTML page -- a captcha or block page served with
status 200 -- is named as such.

What is stored is always an RGB JPEG served as ``image/jpeg``:

* a valid RGB JPEG is stored **byte for byte** as it came (no generation loss, and the
  bytes hash the same on every re-download);
* anything else (an RGB JPEG with a non-sRGB ICC profile, CMYK or greyscale JPEG, PNG with
  or without alpha or a ``tRNS`` key, WebP, GIF, AVIF) is made upright sRGB on white by
  :func:`~undecat.adapters.imaging.convert.flatten_to_rgb` (the same function the collage
  builder uses) and encoded as JPEG at quality :data:`JPEG_QUALITY`.
"""

from __future__ import annotations

import io

import attrs
from PIL import Image, UnidentifiedImageError

from undecat.adapters.imaging.convert import flatten_to_rgb, needs_colour_management
from undecat.errors import PhotoError
from undecat.ports import FetchedPhoto
from undecat.redact import redact_url

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "JPEG_CONTENT_TYPE",
    "JPEG_QUALITY",
    "PhotoValidator",
    "ValidPhoto",
]

#: The content type every stored photo is served with.
JPEG_CONTENT_TYPE = "image/jpeg"
#: JPEG quality of photos that had to be converted.
JPEG_QUALITY = 95
#: Largest photo accepted, in pixels (a 1920-wide catalog photo has about 5.5 million).
DEFAULT_MAX_PIXELS = 40_000_000

_HTML_PAGE = "not an image: the server sent an HTML page (a captcha or block page?)"
_KEEP_AS_IS = frozenset({"JPEG", "MPO"})  # MPO: a camera JPEG with extra frames after it
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml", "text/plain"})


def _formats() -> tuple[str, ...]:
    Image.init()
    wanted = ("JPEG", "MPO", "PNG", "WEBP", "GIF", "AVIF")
    return tuple(f for f in wanted if f in Image.OPEN)


@attrs.frozen
class ValidPhoto:
    """A photo ready to store: JPEG bytes and their content type."""

    content: bytes = attrs.field(repr=lambda b: f"<{len(b)} bytes>")
    content_type: str
    width: int
    height: int
    source_format: str
    converted: bool


class PhotoValidator:
    """Checks fetched photos and turns them into JPEG; :class:`PhotoError` when unusable."""

    def __init__(self, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self.max_pixels = max_pixels
        self._formats = _formats()

    def __repr__(self) -> str:
        return f"PhotoValidator(max_pixels={self.max_pixels})"

    def prepare(self, photo: FetchedPhoto) -> ValidPhoto:
        """Return the photo as it will be stored, or raise :class:`PhotoError` saying why not."""
        return self.check(photo.content, photo.content_type, url=redact_url(photo.url))

    def check(self, data: bytes, content_type: str | None, *, url: str | None = None) -> ValidPhoto:
        """Validate ``data`` (served as ``content_type``) and return what to store."""
        if not data:
            raise PhotoError("not an image: the body is empty (0 bytes)", url=url)
        if _looks_like_markup(data):
            raise PhotoError(_HTML_PAGE, url=url)
        try:
            image = Image.open(io.BytesIO(data), formats=self._formats)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise PhotoError(
                f"refused: more than {self.max_pixels} pixels (decompression bomb?)", url=url
            ) from None
        except UnidentifiedImageError:
            kind = (content_type or "").split(";")[0].strip().lower()
            if kind in _HTML_TYPES:
                raise PhotoError(_HTML_PAGE, url=url) from None
            raise PhotoError(f"not an image ({kind or 'no content type'})", url=url) from None
        except (OSError, ValueError, SyntaxError) as exc:
            raise PhotoError(f"not a readable image: {exc}", url=url) from None
        with image:
            return self._checked(image, data, url)

    def _checked(self, image: Image.Image, data: bytes, url: str | None) -> ValidPhoto:
        width, height = image.size
        if width < 1 or height < 1 or width * height > self.max_pixels:
            raise PhotoError(
                f"refused: {width} x {height} is more than {self.max_pixels} pixels"
                " (decompression bomb?)",
                url=url,
            )
        source = image.format or "unknown"
        # An RGB JPEG is stored as it came only when its colours already are sRGB: one with
        # an Adobe RGB (or other) profile is converted, or its profile would be lost.
        keep = (
            source in _KEEP_AS_IS
            and image.mode == "RGB"
            and not needs_colour_management(image)
            and "transparency" not in image.info
        )
        try:
            if keep:
                # Decoding at 1/8 scale still reads every byte of entropy-coded data, so a
                # truncated file is caught at a fraction of the cost of a full decode.
                image.draft("RGB", (max(1, width // 8), max(1, height // 8)))
            image.load()
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            raise PhotoError(f"broken image ({source}): {exc}", url=url) from None
        except Image.DecompressionBombError:  # pragma: no cover  # caught at open
            raise PhotoError("refused: decompression bomb", url=url) from None
        if keep:
            return ValidPhoto(data, JPEG_CONTENT_TYPE, width, height, source, converted=False)
        rgb = flatten_to_rgb(image)
        out = io.BytesIO()
        rgb.save(out, format="JPEG", quality=JPEG_QUALITY, optimize=True)
        return ValidPhoto(
            out.getvalue(), JPEG_CONTENT_TYPE, rgb.width, rgb.height, source, converted=True
        )


def _looks_like_markup(data: bytes) -> bool:
    """An HTML or XML document (no image format starts with ``<``)."""
    return data[:256].lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<")
