"""Is this pair of user uploads what the app promised? JPEG checks with Pillow, before any write.

Both files must be JPEGs (a camera MPO counts) that decode completely; the main image at
most ``max_main_bytes`` and ``max_pixels`` (checked from the header, before any pixel is
decoded: a decompression bomb costs nothing); the thumbnail at most ``max_thumb_bytes``,
its long side at most ``thumb_max_side`` (200 px) and shorter than the main image's. Both
are stored byte for byte, except that location metadata is cut out of them
(:mod:`undecat.adapters.imaging.jpeg_meta`) unless ``keep_location`` is set.
"""

from __future__ import annotations

import io

import attrs
from PIL import Image, UnidentifiedImageError

from undecat.adapters.imaging.jpeg_meta import JpegStructureError, strip_location
from undecat.domain.user_media import CheckedPair
from undecat.errors import UserMediaError

__all__ = ["MediaLimits", "PairChecker"]

_JPEG_FORMATS = ("JPEG", "MPO")
_MAGIC = {
    b"\x89PNG": "a PNG",
    b"GIF8": "a GIF",
    b"RIFF": "a WebP (or other RIFF) file",
    b"<": "an HTML or XML document",
}


@attrs.frozen
class MediaLimits:
    """What the pair of a user media item may be (defaults: the issue's, configurable)."""

    max_main_bytes: int = 8 * 1024 * 1024
    max_thumb_bytes: int = 64 * 1024
    max_pixels: int = 50_000_000
    thumb_max_side: int = 200
    keep_location: bool = False


class PairChecker:
    """Checks (main, thumbnail) uploads; :class:`~undecat.errors.UserMediaError` says why not."""

    def __init__(self, limits: MediaLimits | None = None) -> None:
        self.limits = limits or MediaLimits()

    def __repr__(self) -> str:
        return f"PairChecker({self.limits!r})"

    def check(self, main: bytes, thumb: bytes, *, main_name: str) -> CheckedPair:
        """Return the pair as it will be stored, or raise saying which file is refused and why."""
        limits = self.limits
        _check_bytes(main_name, main, limits.max_main_bytes)
        _check_bytes("thumb.jpg", thumb, limits.max_thumb_bytes)
        main_size = _decoded_size(main_name, main, limits.max_pixels, draft=True)
        thumb_size = _decoded_size("thumb.jpg", thumb, limits.max_pixels, draft=False)
        thumb_side, main_side = max(thumb_size), max(main_size)
        if thumb_side > limits.thumb_max_side:
            raise UserMediaError(
                f"refused thumb.jpg: {thumb_size[0]} x {thumb_size[1]} px, its long side "
                f"must be at most {limits.thumb_max_side} px"
            )
        if thumb_side >= main_side:
            raise UserMediaError(
                f"refused thumb.jpg: {thumb_size[0]} x {thumb_size[1]} px is not smaller than "
                f"{main_name} ({main_size[0]} x {main_size[1]} px)"
            )
        removed = False
        if not limits.keep_location:
            try:
                main, main_removed = strip_location(main)
                thumb, thumb_removed = strip_location(thumb)
            except JpegStructureError as exc:  # e.g. no end marker, which Pillow forgives
                raise UserMediaError(f"refused: malformed JPEG structure ({exc})") from None
            removed = main_removed or thumb_removed
        return CheckedPair(main, thumb, main_size, thumb_size, removed)


def _check_bytes(name: str, data: bytes, cap: int) -> None:
    if not data:
        raise UserMediaError(f"refused {name}: the file is empty (0 bytes)")
    if len(data) > cap:
        raise UserMediaError(f"refused {name}: {len(data)} bytes, more than the cap of {cap}")
    if not data.startswith(b"\xff\xd8\xff"):
        what = next((w for magic, w in _MAGIC.items() if data.startswith(magic)), None)
        raise UserMediaError(f"refused {name}: not a JPEG" + (f" ({what})" if what else ""))


def _decoded_size(name: str, data: bytes, max_pixels: int, *, draft: bool) -> tuple[int, int]:
    """Open and fully decode one JPEG; return its (width, height)."""
    try:
        image = Image.open(io.BytesIO(data), formats=_JPEG_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UserMediaError(
            f"refused {name}: more than {max_pixels} pixels (decompression bomb?)"
        ) from None
    except UnidentifiedImageError:
        raise UserMediaError(f"refused {name}: not a JPEG Pillow can read") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise UserMediaError(f"refused {name}: not a readable JPEG ({exc})") from None
    with image:
        width, height = image.size
        if width < 1 or height < 1 or width * height > max_pixels:
            raise UserMediaError(
                f"refused {name}: {width} x {height} is more than {max_pixels} pixels"
                " (decompression bomb?)"
            )
        try:
            if draft:
                # A 1/8-scale decode still reads every byte of the entropy-coded data, so a
                # truncated file is caught at a fraction of the memory and time.
                image.draft(image.mode, (max(1, width // 8), max(1, height // 8)))
            image.load()
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            raise UserMediaError(f"refused {name}: the JPEG does not decode ({exc})") from None
        except Image.DecompressionBombError:  # pragma: no cover  # caught at open
            raise UserMediaError(f"refused {name}: decompression bomb") from None
    return width, height
