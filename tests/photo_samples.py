"""Sample photo bodies, good and bad, for the validation and download tests."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    """``image`` encoded as ``fmt``."""
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def rgb_jpeg(
    width: int = 64, height: int = 48, colour: tuple[int, int, int] = (200, 30, 40)
) -> bytes:
    """A valid RGB JPEG (stored byte for byte)."""
    return encode(Image.new("RGB", (width, height), colour), "JPEG", quality=90)


def noisy_jpeg(size: int = 256) -> bytes:
    """An RGB JPEG with enough entropy-coded data that cutting it in half breaks it."""
    return encode(Image.effect_noise((size, size), 64).convert("RGB"), "JPEG", quality=90)


def cmyk_jpeg() -> bytes:
    """A CMYK JPEG of pure red."""
    return encode(Image.new("CMYK", (40, 30), (0, 255, 255, 0)), "JPEG", quality=95)


def alpha_png() -> bytes:
    """A PNG, transparent on its right half, opaque blue on its left."""
    image = Image.new("RGBA", (40, 20), (0, 0, 0, 0))
    image.paste((0, 0, 255, 255), (0, 0, 20, 20))
    return encode(image, "PNG")


def webp() -> bytes:
    """A green WebP."""
    return encode(Image.new("RGB", (50, 70), "green"), "WEBP")


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` (no pixel data: it is never decoded)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


HTML_PAGE = b"<!DOCTYPE html><html><body>Please verify you are human</body></html>"
