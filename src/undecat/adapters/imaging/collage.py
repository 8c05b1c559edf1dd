"""The collage builder on Pillow: photo bytes in, one JPEG out.

The layout (sizes, offsets, limits) is the domain's :func:`~undecat.domain.collage.plan_collage`;
this module only decodes, scales, pastes and encodes:

1. every photo's header is read (size and EXIF orientation, no pixels decoded), so a
   collage that cannot exist is refused before a single raster is allocated;
2. the white canvas of the final size is allocated once;
3. photo by photo, in order: a plain upright RGB JPEG at the collage height (the usual
   catalog photo) is decoded straight into its place on the canvas, with no raster of its
   own; any other photo is decoded, made upright RGB on white, scaled up with LANCZOS when
   it is not already at the collage height, pasted and freed; so memory stays near one
   output raster (plus one source for the unusual photo), never all sources at once;
4. the canvas is encoded as a baseline JPEG at the configured quality with 4:4:4 chroma
   (``subsampling=0``), without EXIF or ICC data, so the same photos always give the same
   bytes.

``Image.draft`` and ``Image.reduce`` are not used: both only help when shrinking, and a
collage never shrinks a photo. Only APIs that pillow-simd shares with Pillow are used, so
pillow-simd (a drop-in replacement installed in Pillow's place) is picked up transparently.
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Sequence
from typing import BinaryIO, TypeGuard

import attrs
from PIL import ExifTags, Image, ImageFile, UnidentifiedImageError

from undecat.adapters.imaging.convert import WHITE, flatten_to_rgb, upright_size
from undecat.domain.collage import (
    DEFAULT_MAX_PIXELS,
    CollageLayout,
    CollagePhotoError,
    CollageTooLargeError,
    Tile,
    plan_collage,
)

__all__ = ["ACCEPTED_FORMATS", "RASTER_CACHE_BLOCKS", "PillowCollageBuilder", "keep_freed_rasters"]

#: The image formats a photo may be in. Deliberately short: Pillow's other plugins include
#: EPS, which runs Ghostscript on whatever bytes it is given. "JPEG" also opens MPO files
#: (JPEGs carrying extra frames, as some cameras write them); the first frame is used.
ACCEPTED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "GIF", "TIFF", "BMP")

# What Pillow raises for bytes that are not a decodable image (truncated, corrupt, a bomb).
_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    struct.error,
    Image.DecompressionBombError,
)


#: Freed memory blocks (16 MiB each by default) Pillow may keep for the next image: one
#: typical collage raster (9600 x 2880 x 4 bytes, 7 blocks) plus a source and a resized tile.
RASTER_CACHE_BLOCKS = 12


def keep_freed_rasters(blocks: int = RASTER_CACHE_BLOCKS) -> None:
    """Let Pillow reuse freed raster memory for the next image instead of returning it.

    Without it every collage maps its ~110 MB canvas afresh and pays a page fault per 4 KiB
    (a third of the build time over the codec floor); with it the blocks of the previous
    collage are recycled. Peak memory does not grow (only freed blocks are kept), idle memory
    does, by up to ``blocks`` x 16 MiB. This is Pillow's own ``PILLOW_BLOCKS_MAX`` setting,
    shared by pillow-simd: when the environment sets that variable, it is left alone.
    """
    if "PILLOW_BLOCKS_MAX" in os.environ:
        return
    from PIL import _imaging as core  # noqa: PLC0415  # Pillow's C core, also pillow-simd's

    core.set_blocks_max(max(blocks, core.get_blocks_max()))


@attrs.frozen
class PillowCollageBuilder:
    """Builds a product's collage from its photos' bytes, in order (a pure function of them).

    Raises :class:`~undecat.domain.collage.CollagePhotoError` for a photo that cannot be
    decoded and :class:`~undecat.domain.collage.CollageTooLargeError` for a collage beyond
    the JPEG format or ``max_pixels``; both are :class:`~undecat.errors.ProductError`.
    """

    quality: int = attrs.field(default=95, validator=attrs.validators.in_(range(1, 101)))
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __call__(self, photos: Sequence[bytes]) -> bytes:
        """Return the collage of ``photos`` as JPEG bytes."""
        return self.build(photos)

    def build(self, photos: Sequence[bytes]) -> bytes:
        """Return the collage of ``photos`` as JPEG bytes."""
        sizes = [_upright_size(data, index, len(photos)) for index, data in enumerate(photos)]
        layout = plan_collage(sizes, max_pixels=self.max_pixels)
        canvas = _canvas(layout)
        try:
            for index, (data, tile) in enumerate(zip(photos, layout.tiles, strict=True)):
                _paste(canvas, data, tile, index=index, count=len(photos))
            return _encode(canvas, self.quality)
        finally:
            canvas.close()


def _what(index: int, count: int) -> str:
    return f"photo {index + 1} of {count}"


def _open(data: bytes, index: int, count: int) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except UnidentifiedImageError as exc:
        # Pillow's message names the in-memory file object (an address): say what we know.
        raise CollagePhotoError(
            f"{_what(index, count)} is not an image in an accepted format"
            f" ({', '.join(ACCEPTED_FORMATS)}; {len(data)} bytes)",
            index=index,
        ) from exc
    except _DECODE_ERRORS as exc:
        raise CollagePhotoError(
            f"{_what(index, count)} is not a readable image ({len(data)} bytes): {exc}",
            index=index,
        ) from exc


def _upright_size(data: bytes, index: int, count: int) -> tuple[int, int]:
    with _open(data, index, count) as image:
        try:
            return upright_size(image)
        except _DECODE_ERRORS as exc:  # a malformed EXIF block
            raise CollagePhotoError(
                f"{_what(index, count)} has unreadable metadata: {exc}", index=index
            ) from exc


def _canvas(layout: CollageLayout) -> Image.Image:
    try:
        return Image.new("RGB", (layout.width, layout.height), WHITE)
    except MemoryError as exc:
        raise CollageTooLargeError(
            f"no memory for a {layout.width} x {layout.height} collage"
        ) from exc


def _paste(canvas: Image.Image, data: bytes, tile: Tile, *, index: int, count: int) -> None:
    """Decode one photo, scale it to the collage height if needed, paste it, free it."""
    with _open(data, index, count) as source:
        if _decode_into(canvas, source, data, tile, index=index, count=count):
            return
        try:
            source.load()
            upright = flatten_to_rgb(source, reuse=True)
        except _DECODE_ERRORS as exc:
            raise CollagePhotoError(
                f"{_what(index, count)} cannot be decoded: {exc}", index=index
            ) from exc
        try:
            if upright.size != (tile.source_width, tile.source_height):
                # The header promised another size than the pixels have: refuse rather than
                # paste a tile that would leave a gap or overlap its neighbour.
                raise CollagePhotoError(
                    f"{_what(index, count)} decoded to {upright.size[0]} x {upright.size[1]},"
                    f" not the {tile.source_width} x {tile.source_height} of its header",
                    index=index,
                )
            if tile.resampled:
                scaled = upright.resize((tile.width, tile.height), Image.Resampling.LANCZOS)
                try:
                    canvas.paste(scaled, (tile.x, 0))
                finally:
                    scaled.close()
            else:
                canvas.paste(upright, (tile.x, 0))
        finally:
            if upright is not source:
                upright.close()


def _direct(source: Image.Image, tile: Tile) -> TypeGuard[ImageFile.ImageFile]:
    """Whether ``source`` can be decoded straight into its place on the canvas.

    That is a plain baseline or progressive JPEG already in RGB, upright, without an
    embedded colour profile (which asks for colour management), at the collage height:
    the decoder's rows are then exactly the tile's pixels, so no source raster is needed.
    """
    return (
        isinstance(source, ImageFile.ImageFile)
        and source.format == "JPEG"
        and source.mode == "RGB"
        and not tile.resampled
        and source.size == (tile.source_width, tile.source_height)
        and len(source.tile) == 1
        and "icc_profile" not in source.info
        and source.getexif().get(ExifTags.Base.Orientation, 1) == 1
    )


def _decode_into(
    canvas: Image.Image, source: Image.Image, data: bytes, tile: Tile, *, index: int, count: int
) -> bool:
    """Decode a JPEG straight into the canvas at ``tile.x``; False when it cannot be.

    Pillow's own decoder, bound to the tile's rectangle of the canvas instead of a raster of
    its own: the same pixels a load and a paste give, without the source's ~21 MiB raster.
    """
    try:
        if not _direct(source, tile):
            return False
        name, _, offset, args = source.tile[0][:4]
        decoder = Image._getdecoder(source.mode, name, args, getattr(source, "decoderconfig", ()))
    except _DECODE_ERRORS:
        return False  # the ordinary path will say what is wrong with it
    box = (tile.x, 0, tile.x + tile.source_width, tile.source_height)
    try:
        decoder.setimage(canvas.im, box)
        consumed, status = decoder.decode(memoryview(data)[offset:])
    except _DECODE_ERRORS as exc:
        raise CollagePhotoError(
            f"{_what(index, count)} cannot be decoded: {exc}", index=index
        ) from exc
    finally:
        decoder.cleanup()
    if consumed >= 0 or status < 0:  # the decoder wanted more bytes, or failed
        raise CollagePhotoError(
            f"{_what(index, count)} cannot be decoded: truncated or corrupt JPEG data"
            f" (decoder status {status})",
            index=index,
        )
    return True


def _encode(canvas: Image.Image, quality: int) -> bytes:
    sink = _sink()
    try:
        canvas.save(sink, format="JPEG", quality=quality, subsampling=0)
        sink.seek(0)
        data = sink.read()
    except (OSError, ValueError) as exc:
        raise CollageTooLargeError(
            f"the {canvas.size[0]} x {canvas.size[1]} collage cannot be encoded: {exc}"
        ) from exc
    finally:
        sink.close()
    return bytes(data)


def _sink() -> BinaryIO:
    """Where the encoder writes: an anonymous in-memory file when the system has them.

    Pillow encodes into a file descriptor without holding the GIL, but into a ``BytesIO``
    with it held, so with a real descriptor ``COLLAGE_WORKERS`` threads encode on as many
    cores at once (measured: 2 threads encode twice as fast as one; into ``BytesIO``, no
    faster than one). ``memfd_create`` (Linux; in systemd's ``@system-service`` set) gives
    such a descriptor with nothing on disk; elsewhere, or if it is refused, a ``BytesIO``.
    The bytes are the same either way.
    """
    create = getattr(os, "memfd_create", None)
    if create is not None:
        try:
            fd = create("undecat-collage", os.MFD_CLOEXEC)
        except OSError:
            pass
        else:
            return io.FileIO(fd, "w+")  # closed by _encode
    return io.BytesIO()
