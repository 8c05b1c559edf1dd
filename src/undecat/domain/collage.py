"""Collage layout: how tall the collage is, how wide each photo becomes, where it goes.

The rule of the source document, made exact:

* the collage is as tall as the tallest (upright) photo;
* every other photo is scaled up to that height keeping its aspect ratio; its new width is
  ``width * height / photo_height`` rounded to the nearest whole pixel, halves up, computed
  in integers so every machine gets the same answer (the document's ``int()`` truncates,
  which skews narrow photos by up to a pixel); a photo already at that height keeps its size
  and is not resampled; nothing is ever scaled down (the scaled width is never below the
  original one);
* photos are placed left to right in their catalog order, with no gap, so the collage is
  exactly as wide as the sum of the scaled widths.

A JPEG cannot be wider or taller than :data:`JPEG_MAX_DIMENSION` pixels, and a collage
beyond ``max_pixels`` would not fit the host's memory: such a product gets a
:class:`CollageTooLargeError` (the product's fault, never a crash), because the rule forbids
the one alternative, scaling down.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from undecat.errors import PhotoError, ProductError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "JPEG_MAX_DIMENSION",
    "CollageLayout",
    "CollagePhotoError",
    "CollageTooLargeError",
    "Tile",
    "plan_collage",
    "scaled_width",
]

#: The largest width or height a baseline JPEG can record (16-bit fields in the SOF marker).
JPEG_MAX_DIMENSION = 65_535

#: The default pixel budget of one collage: 200 MP is ~800 MB as an RGB raster (Pillow keeps
#: 4 bytes a pixel), a quarter of the collage container's 4 GB. A typical collage (five
#: 1920 x 2880 photos) is 27.6 MP.
DEFAULT_MAX_PIXELS = 200_000_000


class CollageTooLargeError(ProductError):
    """The collage of a product would exceed the JPEG format's limit or the pixel budget."""


class CollagePhotoError(PhotoError):
    """One photo of a collage is unusable; ``index`` is its position (from 0) in the list."""

    def __init__(self, message: str, *, index: int) -> None:
        super().__init__(message)
        self.index = index


@attrs.frozen
class Tile:
    """One photo's place in the collage: its upright size, its scaled size, its left edge."""

    source_width: int
    source_height: int
    width: int
    height: int
    x: int

    @property
    def resampled(self) -> bool:
        """Whether the photo must be scaled (False when it already has the collage height).

        Decided on the height, not the width: a photo 1 px wide stays 1 px wide when scaled
        from 3 to 4 px high, yet still needs scaling.
        """
        return self.source_height != self.height


@attrs.frozen
class CollageLayout:
    """The collage's size and its tiles, left to right."""

    width: int
    height: int
    tiles: tuple[Tile, ...]

    @property
    def pixels(self) -> int:
        """How many pixels the collage has."""
        return self.width * self.height


def scaled_width(width: int, height: int, target_height: int) -> int:
    """Return the width of a ``width`` x ``height`` photo scaled to ``target_height``.

    Nearest whole pixel, halves up, in integer arithmetic; a photo already at the target
    height keeps its width.
    """
    if height == target_height:
        return width
    # floor(w * T / h + 1/2) without floats: (2wT + h) // 2h.
    return (2 * width * target_height + height) // (2 * height)


def plan_collage(
    sizes: Sequence[tuple[int, int]], *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> CollageLayout:
    """Lay out photos of the given upright ``(width, height)`` sizes, in order.

    Raises :class:`~undecat.errors.ProductError` for no photos or a photo without pixels,
    and :class:`CollageTooLargeError` when the result cannot be a JPEG or exceeds
    ``max_pixels``.
    """
    if not sizes:
        raise ProductError("the product has no photos to put in a collage")
    for index, (width, height) in enumerate(sizes):
        if width < 1 or height < 1:
            raise CollagePhotoError(
                f"photo {index + 1} of {len(sizes)} has no pixels ({width} x {height})",
                index=index,
            )
    target = max(height for _, height in sizes)
    tiles: list[Tile] = []
    x = 0
    for width, height in sizes:
        scaled = scaled_width(width, height, target)
        tiles.append(
            Tile(source_width=width, source_height=height, width=scaled, height=target, x=x)
        )
        x += scaled
    layout = CollageLayout(width=x, height=target, tiles=tuple(tiles))
    if layout.width > JPEG_MAX_DIMENSION or layout.height > JPEG_MAX_DIMENSION:
        raise CollageTooLargeError(
            f"the collage would be {layout.width} x {layout.height} pixels; a JPEG holds at most"
            f" {JPEG_MAX_DIMENSION} in each direction, and photos are never scaled down"
            f" (tallest photo {target} px high, {_photos(len(sizes))})"
        )
    if layout.pixels > max_pixels:
        raise CollageTooLargeError(
            f"the collage would be {layout.width} x {layout.height} pixels"
            f" ({layout.pixels / 1e6:.0f} MP), over the budget of {max_pixels / 1e6:.0f} MP"
            f" (tallest photo {target} px high, {_photos(len(sizes))})"
        )
    return layout


def _photos(count: int) -> str:
    return "1 photo" if count == 1 else f"{count} photos"
