"""Real ICC v2 RGB profiles built byte by byte (matrix + gamma), for colour-management tests.

No profile file ships with Pillow or the system here, so the two a CDN photo may carry are
written from their published numbers: Adobe RGB (1998) and a wide-gamut scanner/camera
"TIFF RGB" profile (ProPhoto primaries, gamma 1.8). LittleCMS reads them like any other.
"""

from __future__ import annotations

import struct

__all__ = ["ADOBE_RGB", "TIFF_RGB", "rgb_profile"]

_D50 = (0.9642, 1.0, 0.8249)


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz(x: float, y: float, z: float) -> bytes:
    return b"XYZ \0\0\0\0" + _s15(x) + _s15(y) + _s15(z)


def _curve(gamma: float) -> bytes:
    return b"curv\0\0\0\0" + struct.pack(">IH", 1, round(gamma * 256)) + b"\0\0"


def _desc(text: str) -> bytes:
    ascii_text = text.encode("ascii") + b"\0"
    body = b"desc\0\0\0\0" + struct.pack(">I", len(ascii_text)) + ascii_text
    body += struct.pack(">II", 0, 0) + struct.pack(">HB", 0, 0) + b"\0" * 67
    return body


def _text(text: str) -> bytes:
    return b"text\0\0\0\0" + text.encode("ascii") + b"\0"


def rgb_profile(
    description: str,
    red: tuple[float, float, float],
    green: tuple[float, float, float],
    blue: tuple[float, float, float],
    gamma: float,
) -> bytes:
    """An ICC v2 display profile: D50-adapted colorants ``red``/``green``/``blue``, one gamma."""
    tags = [
        (b"desc", _desc(description)),
        (b"cprt", _text("No copyright, test data")),
        (b"wtpt", _xyz(*_D50)),
        (b"rXYZ", _xyz(*red)),
        (b"gXYZ", _xyz(*green)),
        (b"bXYZ", _xyz(*blue)),
        (b"rTRC", _curve(gamma)),
        (b"gTRC", _curve(gamma)),
        (b"bTRC", _curve(gamma)),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for signature, body in tags:
        padded = body + b"\0" * (-len(body) % 4)
        table += signature + struct.pack(">II", offset + len(data), len(body))
        data += padded
    size = offset + len(data)
    header = struct.pack(">I", size) + b"lcms" + struct.pack(">I", 0x02100000)
    header += b"mntrRGB XYZ " + struct.pack(">6H", 2024, 1, 1, 0, 0, 0)
    header += b"acsp" + b"APPL" + b"\0" * 4 + b"\0" * 8 + b"\0" * 8 + struct.pack(">I", 0)
    header += _s15(_D50[0]) + _s15(_D50[1]) + _s15(_D50[2]) + b"\0" * 4
    header += b"\0" * (128 - len(header))
    return header + struct.pack(">I", len(tags)) + table + data


#: Adobe RGB (1998), as Photoshop embeds it (D50-adapted colorants, gamma 563/256).
ADOBE_RGB = rgb_profile(
    "Adobe RGB (1998)",
    (0.60974, 0.31111, 0.01947),
    (0.20528, 0.62567, 0.06087),
    (0.14919, 0.06322, 0.74457),
    563 / 256,
)

#: A wide-gamut "TIFF RGB" profile as scanners and cameras embed (ProPhoto primaries).
TIFF_RGB = rgb_profile(
    "TIFF RGB",
    (0.7977, 0.2880, 0.0000),
    (0.1352, 0.7119, 0.0000),
    (0.0313, 0.0001, 0.8249),
    1.8,
)
