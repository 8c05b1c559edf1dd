"""Turning any decoded image into upright RGB on white, the one colour model we store."""

from __future__ import annotations

from PIL import ExifTags, Image, ImageOps

__all__ = ["WHITE", "flatten_to_rgb", "upright_size"]

WHITE = (255, 255, 255)


# EXIF orientations that need a transposition (1, absent or out of range need none), and
# those among them that turn the image by a quarter (width and height swap).
_TRANSPOSED_ORIENTATIONS = frozenset(range(2, 9))
_QUARTER_TURNS = frozenset(range(5, 9))


def upright_size(image: Image.Image) -> tuple[int, int]:
    """Return the ``(width, height)`` :func:`flatten_to_rgb` will give, from the header only."""
    width, height = image.size
    if image.format == "TIFF":
        # Pillow's TIFF reader already reports the upright size and turns the pixels itself
        # on load (dropping the tag), so the orientation must not be counted twice.
        return width, height
    if image.getexif().get(ExifTags.Base.Orientation, 1) in _QUARTER_TURNS:
        return height, width
    return width, height


def flatten_to_rgb(image: Image.Image, *, reuse: bool = False) -> Image.Image:
    """Return ``image`` upright (EXIF orientation applied) as RGB, transparency on white.

    CMYK (including Adobe's inverted CMYK JPEGs, which Pillow un-inverts on decode),
    palette, greyscale and 16-bit modes are converted; alpha and palette transparency are
    composited over white rather than dropped (dropping alpha turns transparent pixels black).

    The result is a new image, unless ``reuse`` is true: then an image that is already
    upright RGB is returned as it is rather than copied (for callers that own ``image`` and
    drop it afterwards, such as the collage builder, where the copy would cost a full raster).
    """
    orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    if reuse and orientation not in _TRANSPOSED_ORIENTATIONS:
        upright = image
    else:
        upright = ImageOps.exif_transpose(image)
    has_alpha = upright.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        upright.mode == "P" and "transparency" in upright.info
    )
    if has_alpha:
        rgba = upright.convert("RGBA")
        background = Image.new("RGB", rgba.size, WHITE)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if upright.mode == "RGB":
        return upright
    if upright.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit greyscale: scale to 8 bits before the RGB conversion (else it clips).
        upright = upright.point(lambda v: v / 256).convert("L")
    return upright.convert("RGB")
