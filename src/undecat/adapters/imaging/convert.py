"""Turning any decoded image into upright sRGB on white, the one colour model we store.

One function, :func:`flatten_to_rgb`, used by photo validation and by the collage builder
alike, so a photo looks the same in both:

* **colour management** (LittleCMS through ``PIL.ImageCms``): a photo with an embedded ICC
  profile that is not sRGB (Adobe RGB, a camera's or scanner's "TIFF RGB", a CMYK press
  profile, a grey gamma) is converted from that profile to sRGB, perceptual intent. Its
  pixels are never kept raw with the profile dropped, which would show Adobe RGB photos
  dull and CMYK ones garish. CMYK without a profile falls back to Pillow's plain
  conversion; a profile LittleCMS cannot read is ignored (the pixels are taken as sRGB);
* **transparency**: an alpha channel, palette transparency, and the single transparent
  colour of a PNG ``tRNS`` chunk on an RGB, grey or 16-bit grey image are all composited
  over white, never dropped (dropped, the keyed-out area keeps its key colour: bright green,
  or black);
* **16-bit grey** is scaled to 8 bits (65535 -> 255), not clipped.
"""

from __future__ import annotations

import io

from PIL import ExifTags, Image, ImageCms, ImageMath, ImageOps

__all__ = ["WHITE", "flatten_to_rgb", "needs_colour_management", "upright_size"]

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


_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_WIDE_GREY = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I"})
_KEYED = frozenset({"1", "L", "RGB"}) | _WIDE_GREY
_CMS_MODES = frozenset({"RGB", "RGBA", "CMYK", "L", "LA"})
_SRGB = ImageCms.createProfile("sRGB")


def _profile(image: Image.Image) -> ImageCms.ImageCmsProfile | None:
    """The embedded ICC profile when it is readable and not sRGB; None otherwise."""
    data = image.info.get("icc_profile")
    if not data or image.mode not in _CMS_MODES:
        return None
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(data))
        description = ImageCms.getProfileDescription(profile)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None  # unreadable: the pixels are taken as sRGB, as a browser would
    if "srgb" in description.lower().replace(" ", ""):
        return None
    return profile


def needs_colour_management(image: Image.Image) -> bool:
    """Return whether ``image`` carries a readable ICC profile other than sRGB."""
    return _profile(image) is not None


def _to_srgb(image: Image.Image, profile: ImageCms.ImageCmsProfile | None) -> Image.Image:
    """``image`` (without alpha) as sRGB RGB pixels, through ``profile`` when there is one."""
    if profile is not None:
        try:
            converted = ImageCms.profileToProfile(
                image,
                profile,
                _SRGB,
                renderingIntent=ImageCms.Intent.PERCEPTUAL,
                outputMode="RGB",
            )
        except (ImageCms.PyCMSError, OSError, ValueError):
            converted = None  # a profile that does not fit the pixels: as if absent
        if converted is not None:
            return converted
    if image.mode == "RGB":
        return image
    if image.mode in _WIDE_GREY:
        # 16/32-bit greyscale: scale to 8 bits before the RGB conversion (else it clips).
        image = image.point(lambda v: v / 257).convert("L")
    return image.convert("RGB")


def _key_mask(image: Image.Image) -> Image.Image | None:
    """The alpha of a ``tRNS`` colour key (0 where the pixel equals the key), or None."""
    key = image.info.get("transparency")
    if key is None or image.mode not in _KEYED or isinstance(key, bytes):
        return None
    if image.mode == "RGB":
        if not (isinstance(key, tuple) and len(key) == 3):  # r, g, b
            return None
        return image.convert("RGBA").getchannel("A")
    if not isinstance(key, int):
        return None
    wide = image if image.mode == "I" else image.convert("I")
    mask = ImageMath.lambda_eval(lambda a: (a["im"] != key) * 255, im=wide)
    if not isinstance(mask, Image.Image):  # pragma: no cover  # Pillow always gives an image
        return None
    return mask.convert("L")


def flatten_to_rgb(image: Image.Image, *, reuse: bool = False) -> Image.Image:
    """Return ``image`` upright (EXIF orientation applied) as sRGB, transparency on white.

    The rules are in the module docstring. The result is a new image, unless ``reuse`` is
    true: then an image that is already upright sRGB RGB with nothing transparent is
    returned as it is rather than copied (for callers that own ``image`` and drop it
    afterwards, such as the collage builder, where the copy would cost a full raster).
    """
    profile = _profile(image)
    orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    if reuse and orientation not in _TRANSPOSED_ORIENTATIONS:
        upright = image
    else:
        upright = ImageOps.exif_transpose(image)
    alpha: Image.Image | None = None
    if upright.mode in _ALPHA_MODES or (upright.mode == "P" and "transparency" in upright.info):
        grey = upright.mode in ("LA", "La")
        with_alpha = upright.convert("LA" if grey else "RGBA")
        alpha = with_alpha.getchannel("A")
        colour = with_alpha.convert("L" if grey else "RGB")
    else:
        alpha = _key_mask(upright)
        colour = upright
    rgb = _to_srgb(colour, profile)
    if alpha is None:
        return rgb
    background = Image.new("RGB", rgb.size, WHITE)
    background.paste(rgb, mask=alpha)
    return background
