"""The collage builder: the layout rule, the pixels, the JPEG it writes, and bad input."""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, ImageChops, ImageStat
from PIL.JpegImagePlugin import JpegImageFile

from tests.strategies import Photo, photos
from undecat.adapters.imaging.collage import PillowCollageBuilder
from undecat.domain.collage import (
    JPEG_MAX_DIMENSION,
    CollageLayout,
    CollagePhotoError,
    CollageTooLargeError,
    plan_collage,
    scaled_width,
)
from undecat.errors import ProductError

BUILDER = PillowCollageBuilder(quality=95)


def _decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def _mean_error(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference per channel value between two RGB images of one size."""
    assert a.size == b.size
    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / 3


def _expected_tile(photo: Photo, width: int, height: int) -> Image.Image:
    if photo.height == height:
        return photo.visual
    return photo.visual.resize((width, height), Image.Resampling.LANCZOS)


def _solid(width: int, height: int, colour: tuple[int, int, int], fmt: str = "JPEG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, fmt)
    return buffer.getvalue()


# --- the layout rule (pure) -----------------------------------------------------------------

sizes = st.lists(st.tuples(st.integers(1, 5000), st.integers(1, 5000)), min_size=1, max_size=8)


def _plan(shape: list[tuple[int, int]]) -> CollageLayout | None:
    """The layout, or None when it is refused -- which must be exactly when it is too wide."""
    height = max(h for _, h in shape)
    width = sum(scaled_width(w, h, height) for w, h in shape)
    try:
        layout = plan_collage(shape, max_pixels=10**12)
    except CollageTooLargeError:
        assert width > JPEG_MAX_DIMENSION or height > JPEG_MAX_DIMENSION
        return None
    assert width <= JPEG_MAX_DIMENSION
    assert height <= JPEG_MAX_DIMENSION
    return layout


@given(sizes)
def test_layout_is_as_tall_as_the_tallest_and_as_wide_as_its_tiles(
    shape: list[tuple[int, int]],
) -> None:
    """The collage height is the tallest photo's; tiles sit edge to edge, left to right."""
    layout = _plan(shape)
    if layout is None:
        return
    assert layout.height == max(h for _, h in shape)
    x = 0
    for tile, (width, height) in zip(layout.tiles, shape, strict=True):
        assert (tile.source_width, tile.source_height) == (width, height)
        assert tile.height == layout.height
        assert tile.x == x
        x += tile.width
    assert layout.width == x


@given(sizes)
def test_layout_keeps_aspect_ratios_to_the_nearest_pixel_and_never_shrinks(
    shape: list[tuple[int, int]],
) -> None:
    """Each scaled width is the exact one rounded to the nearest pixel, never below the original."""
    layout = _plan(shape)
    if layout is None:
        return
    for tile, (width, height) in zip(layout.tiles, shape, strict=True):
        exact = width * layout.height / height
        assert abs(tile.width - exact) <= 0.5
        assert tile.width >= width
        assert tile.resampled == (height != layout.height)


def test_narrow_photo_shorter_than_the_collage_is_still_resampled() -> None:
    """A 1 x 3 photo next to a 1 x 4 one keeps its width of 1 but must be scaled in height."""
    layout = plan_collage([(1, 3), (1, 4)])
    assert [(t.width, t.height, t.resampled) for t in layout.tiles] == [(1, 4, True), (1, 4, False)]


def test_scaled_width_rounds_halves_up() -> None:
    """A scaled width exactly halfway between two pixels rounds up (3 x 2 to 3 high: 4.5 -> 5)."""
    assert scaled_width(3, 2, 3) == 5
    assert scaled_width(1, 3, 4) == 1  # 1.33 -> 1
    assert scaled_width(2, 3, 4) == 3  # 2.67 -> 3


def test_layout_refuses_what_a_jpeg_cannot_hold() -> None:
    """A collage wider or taller than 65,535 pixels is a CollageTooLargeError naming the size."""
    with pytest.raises(CollageTooLargeError, match=r"65536 x 10 .*at most 65535"):
        plan_collage([(65_535, 10), (1, 10)])
    with pytest.raises(CollageTooLargeError, match="at most 65535"):
        plan_collage([(1, JPEG_MAX_DIMENSION + 1)])
    plan_collage([(65_535, 1)], max_pixels=10**12)  # exactly at the limit is fine


def test_layout_refuses_collages_over_the_pixel_budget() -> None:
    """A collage over the pixel budget is refused before any memory is spent on it."""
    with pytest.raises(CollageTooLargeError, match="over the budget of 1 MP"):
        plan_collage([(1000, 1000), (1, 1000)], max_pixels=1_000_000)


def test_layout_refuses_no_photos_and_empty_photos() -> None:
    """No photos at all, or a photo without pixels, fails the product with a reason."""
    with pytest.raises(ProductError, match="no photos"):
        plan_collage([])
    with pytest.raises(CollagePhotoError, match=r"photo 2 of 2 has no pixels") as caught:
        plan_collage([(10, 10), (0, 10)])
    assert caught.value.index == 1


# --- the builder's pixels and JPEG ------------------------------------------------------------


@given(st.lists(photos(), min_size=1, max_size=8))
def test_collage_shows_every_photo_upright_in_order_at_the_tallest_height(
    shots: list[Photo],
) -> None:
    """Each tile matches its photo (upright, RGB on white, LANCZOS-scaled) within JPEG tolerance."""
    collage = _decode(BUILDER.build([p.data for p in shots]))
    height = max(p.height for p in shots)
    widths = [scaled_width(p.width, p.height, height) for p in shots]
    assert collage.mode == "RGB"
    assert collage.size == (sum(widths), height)
    x = 0
    for photo, width in zip(shots, widths, strict=True):
        tile = collage.crop((x, 0, x + width, height))
        error = _mean_error(tile, _expected_tile(photo, width, height))
        # q95 4:4:4 is within ~1-2 levels on smooth content; a lossy source adds its own error,
        # and tiles a few pixels wide share their 8 x 8 blocks with their neighbours.
        limit = 6.0 if photo.lossy or width < 8 else 4.0
        assert error <= limit, (photo, width, error)
        x += width


def test_tiles_keep_their_order() -> None:
    """Photos appear left to right in the order given, not sorted by size or colour."""
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30)]
    shots = [_solid(20 + 10 * i, 40, c) for i, c in enumerate(reversed(colours))]
    collage = _decode(BUILDER.build(shots))
    x = 0
    for i, colour in enumerate(reversed(colours)):
        width = 20 + 10 * i
        middle = collage.getpixel((x + width // 2, 20))
        assert isinstance(middle, tuple)
        assert all(abs(a - b) <= 3 for a, b in zip(middle, colour, strict=True))
        x += width


@given(st.lists(photos(max_side=24), min_size=1, max_size=5))
def test_same_photos_give_byte_identical_collages(shots: list[Photo]) -> None:
    """Building twice from the same bytes gives the same bytes (safe overwrite on a retry)."""
    data = [p.data for p in shots]
    assert BUILDER.build(data) == BUILDER.build(list(data))


@given(st.lists(photos(max_side=24), min_size=1, max_size=5))
def test_output_equals_the_naive_all_at_once_collage(shots: list[Photo]) -> None:
    """Streaming one photo at a time gives the very bytes of decoding everything up front."""
    from undecat.adapters.imaging.convert import flatten_to_rgb  # noqa: PLC0415

    upright = [flatten_to_rgb(_decode(p.data)) for p in shots]
    height = max(im.height for im in upright)
    tiles = [
        im
        if im.height == height
        else im.resize(
            (scaled_width(im.width, im.height, height), height), Image.Resampling.LANCZOS
        )
        for im in upright
    ]
    canvas = Image.new("RGB", (sum(t.width for t in tiles), height), (255, 255, 255))
    x = 0
    for tile in tiles:
        canvas.paste(tile, (x, 0))
        x += tile.width
    buffer = io.BytesIO()
    canvas.save(buffer, "JPEG", quality=95, subsampling=0)
    assert BUILDER.build([p.data for p in shots]) == buffer.getvalue()


def test_catalog_jpegs_decoded_into_the_canvas_equal_a_load_and_paste() -> None:
    """Full-height RGB JPEGs (decoded straight into the canvas) give the bytes of load + paste."""
    shots = []
    for seed in range(3):
        noise = Image.effect_noise((640, 960), 30 + 20 * seed).convert("RGB")
        buffer = io.BytesIO()
        Image.merge(
            "RGB",
            (
                noise.getchannel(0),
                Image.linear_gradient("L").resize(noise.size),
                noise.getchannel(0).rotate(90 * seed),
            ),
        ).save(buffer, "JPEG", quality=85)
        shots.append(buffer.getvalue())
    canvas = Image.new("RGB", (3 * 640, 960), (255, 255, 255))
    for n, data in enumerate(shots):
        canvas.paste(_decode(data), (640 * n, 0))
    buffer = io.BytesIO()
    canvas.save(buffer, "JPEG", quality=95, subsampling=0)
    assert BUILDER.build(shots) == buffer.getvalue()


@pytest.mark.parametrize("kept", [0.1, 0.5, 0.99])
def test_a_jpeg_cut_anywhere_fails_as_that_photo(kept: float) -> None:
    """A full-height JPEG cut at 10, 50 or 99 % is that photo's CollagePhotoError."""
    whole = _solid(300, 400, (50, 60, 70))
    with pytest.raises(CollagePhotoError, match=r"photo 1 of 2 (cannot be decoded|is not a read)"):
        BUILDER.build([whole[: int(len(whole) * kept)], whole])


def _read_jpeg(data: bytes) -> JpegImageFile:
    image = _decode(data)
    assert isinstance(image, JpegImageFile)
    return image


def _pillow_tables(quality: int) -> dict[int, list[int]]:
    """The quantisation tables Pillow writes for ``quality`` (read back from a tiny JPEG)."""
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (128, 64, 32)).save(buffer, "JPEG", quality=quality, subsampling=0)
    return {k: list(v) for k, v in _read_jpeg(buffer.getvalue()).quantization.items()}


# The example tables of the JPEG standard (ITU T.81 Annex K), in natural order, and the IJG
# rule that scales them for a quality setting: an oracle that does not go through Pillow.
_LUMINANCE = [
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
]  # fmt: skip
_CHROMINANCE = [17, 18, 24, 47, *[99] * 4, 18, 21, 26, 66, *[99] * 4, 24, 26, 56, *[99] * 5]
_CHROMINANCE += [47, 66, *[99] * 6]
_CHROMINANCE += [99] * (64 - len(_CHROMINANCE))


def _ijg_tables(quality: int) -> dict[int, list[int]]:
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return {
        index: [min(255, max(1, (value * scale + 50) // 100)) for value in base]
        for index, base in enumerate((_LUMINANCE, _CHROMINANCE))
    }


@given(st.integers(1, 100), st.lists(photos(max_side=16), min_size=1, max_size=3))
def test_collage_is_a_444_jpeg_of_the_configured_quality(quality: int, shots: list[Photo]) -> None:
    """The file is a baseline JPEG, 4:4:4 (every component 1x1), with the quality's tables."""
    collage = _read_jpeg(PillowCollageBuilder(quality=quality).build([p.data for p in shots]))
    assert [(h, v) for _, h, v, _ in collage.layer] == [(1, 1), (1, 1), (1, 1)]
    tables = {k: list(v) for k, v in collage.quantization.items()}
    assert tables == _pillow_tables(quality)
    assert tables == _ijg_tables(quality)
    assert "exif" not in collage.info
    assert "icc_profile" not in collage.info
    assert "progressive" not in collage.info


def test_photo_at_the_collage_height_is_not_resampled() -> None:
    """A photo already as tall as the collage is pasted pixel for pixel, not resampled."""
    pattern = Image.new("RGB", (16, 16))
    pattern.putdata(
        [((x * 37) % 256, (y * 53) % 256, (x * y) % 256) for y in range(16) for x in range(16)]
    )
    buffer = io.BytesIO()
    pattern.save(buffer, "PNG")
    collage = _decode(PillowCollageBuilder(quality=100).build([buffer.getvalue()]))
    assert collage.size == (16, 16)
    # Quality 100 leaves only rounding noise: a resampling would blur this pattern far more.
    assert _mean_error(collage, pattern) < 1.0


# --- bad input -----------------------------------------------------------------------------


def test_single_photo_makes_a_collage_of_itself() -> None:
    """One photo gives a collage of exactly its size."""
    collage = _decode(BUILDER.build([_solid(48, 64, (10, 120, 200))]))
    assert collage.size == (48, 64)


def test_thirty_photos_are_all_placed() -> None:
    """Thirty photos of mixed heights all appear, scaled to the tallest."""
    shots = [_solid(10 + i % 5, 20 + i % 7, (i * 8, 255 - i * 8, 100)) for i in range(30)]
    collage = _decode(BUILDER.build(shots))
    expected = sum(scaled_width(10 + i % 5, 20 + i % 7, 26) for i in range(30))
    assert collage.size == (expected, 26)


def test_one_photo_twenty_times_taller_scales_the_others_up() -> None:
    """One photo 20x taller than the rest makes every other photo 20x larger, nothing smaller."""
    shots = [_solid(30, 40, (200, 0, 0)), _solid(30, 800, (0, 200, 0)), _solid(30, 40, (0, 0, 200))]
    collage = _decode(BUILDER.build(shots))
    assert collage.size == (600 + 30 + 600, 800)
    red = collage.getpixel((300, 400))
    assert isinstance(red, tuple)
    assert red[0] > 190
    assert red[1] < 10


def test_one_photo_twenty_times_taller_at_full_resolution_is_refused_clearly() -> None:
    """Two 1920 x 2880 photos beside one 20x taller would be 76,900 px wide: a clear error."""
    strip = io.BytesIO()
    Image.new("L", (100, 57_600), 0).save(strip, "PNG")
    photo = _solid(1920, 2880, (1, 2, 3))
    with pytest.raises(CollageTooLargeError, match=r"76900 x 57600 .*at most 65535"):
        BUILDER.build([photo, strip.getvalue(), photo])


def test_a_one_by_ten_thousand_strip_is_a_collage() -> None:
    """A 1 x 10,000 strip is a valid photo; next to a normal one it scales the other up."""
    strip = io.BytesIO()
    Image.new("RGB", (1, 10_000), (0, 0, 0)).save(strip, "PNG")
    alone = _decode(BUILDER.build([strip.getvalue()]))
    assert alone.size == (1, 10_000)
    together = _decode(BUILDER.build([_solid(20, 100, (255, 0, 0)), strip.getvalue()]))
    assert together.size == (2000 + 1, 10_000)


def test_truncated_photo_fails_with_its_position() -> None:
    """A truncated original is a CollagePhotoError naming which photo, not a crash."""
    whole = _solid(300, 400, (50, 60, 70))
    with pytest.raises(CollagePhotoError, match=r"photo 2 of 3 cannot be decoded") as caught:
        BUILDER.build([whole, whole[: len(whole) // 2], whole])
    assert caught.value.index == 1


def test_bytes_that_are_no_image_fail_with_a_readable_reason() -> None:
    """Non-image bytes give a message naming the accepted formats, not a Python object address."""
    with pytest.raises(CollagePhotoError, match=r"photo 1 of 1 is not an image") as caught:
        BUILDER.build([b"<html>404</html>"])
    assert "0x" not in str(caught.value)


def test_formats_outside_the_accepted_list_are_refused() -> None:
    """A PostScript file is refused without Pillow ever handing it to Ghostscript."""
    with pytest.raises(CollagePhotoError, match="not an image in an accepted format"):
        BUILDER.build([b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n"])


def test_keep_freed_rasters_raises_pillows_block_cache_unless_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The collage host lets Pillow recycle raster blocks, but an operator's setting wins."""
    from PIL import _imaging as core  # noqa: PLC0415

    from undecat.adapters.imaging.collage import keep_freed_rasters  # noqa: PLC0415

    before = core.get_blocks_max()
    try:
        core.set_blocks_max(0)
        monkeypatch.setenv("PILLOW_BLOCKS_MAX", "0")
        keep_freed_rasters(5)
        assert core.get_blocks_max() == 0
        monkeypatch.delenv("PILLOW_BLOCKS_MAX")
        keep_freed_rasters(5)
        assert core.get_blocks_max() == 5
    finally:
        core.set_blocks_max(before)


def test_encoder_writes_into_a_descriptor_and_falls_back_to_memory_with_the_same_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The collage is encoded into an in-memory file (the GIL-free path), else a BytesIO."""
    import os  # noqa: PLC0415

    from undecat.adapters.imaging import collage  # noqa: PLC0415

    data = [_solid(30, 45, (200, 10, 10)), _solid(20, 45, (10, 200, 10))]
    with collage._sink() as sink:
        assert sink.fileno() >= 0  # a real descriptor here (Linux: memfd_create)
    through_descriptor = BUILDER.build(data)

    def refused(name: str, flags: int = 0) -> int:
        raise PermissionError(1, "Operation not permitted")  # a seccomp filter saying no

    monkeypatch.setattr(os, "memfd_create", refused)
    with collage._sink() as sink:
        assert isinstance(sink, io.BytesIO)
    assert BUILDER.build(data) == through_descriptor
