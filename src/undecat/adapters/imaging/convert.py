"""Turning any decoded image into upright RGB on white, the one colour model we store."""

from __future__ import annotations

from PIL import Image, ImageOps

__all__ = ["WHITE", "flatten_to_rgb"]

WHITE = (255, 255, 255)


def flatten_to_rgb(image: Image.Image) -> Image.Image:
    """Return ``image`` upright (EXIF orientation applied) as RGB, transparency on white.

    CMYK (including Adobe's inverted CMYK JPEGs, which Pillow un-inverts on decode),
    palette, greyscale and 16-bit modes are converted; alpha and palette transparency are
    composited over white rather than dropped (dropping alpha turns transparent pixels black).
    """
    upright = ImageOps.exif_transpose(image)
    if upright is None:  # pragma: no cover  # only with in_place=True
        upright = image
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
