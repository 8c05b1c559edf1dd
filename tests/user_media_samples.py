"""JPEGs for the user media tests: phone-like photos with EXIF (and GPS), thumbnails, PNGs."""

from __future__ import annotations

import io

from PIL import Image

#: Where the photo was taken: Dubai Mall, as a phone writes it in the GPS IFD.
GPS = {1: "N", 2: (25.0, 11.0, 51.25), 3: "E", 4: (55.0, 16.0, 46.5), 29: "2026:01:02"}


def jpeg(
    width: int = 640,
    height: int = 480,
    *,
    gps: bool = False,
    progressive: bool = False,
    colour: tuple[int, int, int] = (200, 60, 30),
    quality: int = 85,
) -> bytes:
    """A JPEG with some texture, camera EXIF (orientation, make) and optionally a GPS IFD."""
    image = Image.new("RGB", (width, height), colour)
    for x in range(0, width, 7):  # a little texture, so scans are not trivially small
        image.putpixel((x, (x * 13) % height), (x % 256, 255 - x % 256, 90))
    exif = Image.Exif()
    exif[0x0112] = 1  # orientation
    exif[0x010F] = "UNDE Phone"  # make
    if gps:
        exif[0x8825] = GPS
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif, progressive=progressive, quality=quality)
    return out.getvalue()


def thumb(side: int = 200, *, gps: bool = False) -> bytes:
    """A thumbnail the phone makes: long side ``side`` px, 3:4."""
    return jpeg(side, side * 3 // 4, gps=gps, quality=70)


def png(width: int = 640, height: int = 480) -> bytes:
    """A PNG (to be sent under a .jpg name)."""
    out = io.BytesIO()
    Image.new("RGB", (width, height), (1, 2, 3)).save(out, format="PNG")
    return out.getvalue()


def gps_of(data: bytes) -> dict[int, object]:
    """The GPS IFD Pillow reads from a JPEG (empty when there is none)."""
    with Image.open(io.BytesIO(data)) as image:
        return dict(image.getexif().get_ifd(0x8825))


def pixels(data: bytes) -> bytes:
    """The decoded RGB pixels of a JPEG."""
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB").tobytes()
