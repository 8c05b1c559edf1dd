"""Location metadata cut out of JPEGs in place: GPS gone, pixels and other EXIF untouched."""

from __future__ import annotations

import io
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from tests.user_media_samples import GPS, gps_of, jpeg, pixels
from undecat.adapters.imaging.jpeg_meta import JpegStructureError, strip_location


def _scans(data: bytes) -> bytes:
    """Everything from the first start-of-scan marker on (the entropy-coded image)."""
    return data[data.index(b"\xff\xda") :]


@pytest.mark.parametrize("progressive", [False, True])
def test_gps_is_removed_and_nothing_else_changes(progressive: bool) -> None:
    """The GPS IFD goes; orientation and make stay; the scans are the same bytes (no re-encode)."""
    original = jpeg(320, 240, gps=True, progressive=progressive)
    assert set(gps_of(original)) == set(GPS)
    stripped, removed = strip_location(original)
    assert removed
    assert gps_of(stripped) == {}
    with Image.open(io.BytesIO(stripped)) as image:
        exif = image.getexif()
        assert exif[0x0112] == 1
        assert exif[0x010F] == "UNDE Phone"
        assert 0x8825 not in exif
    assert len(stripped) == len(original)
    assert _scans(stripped) == _scans(original)
    assert pixels(stripped) == pixels(original)
    for value in (b"2026:01:02",):  # the GPS date string is zeroed, not just unlinked
        assert value not in stripped


def test_a_jpeg_without_location_is_returned_as_is() -> None:
    """No GPS, no XMP, nothing after the image: the very same bytes come back."""
    original = jpeg(100, 80)
    stripped, removed = strip_location(original)
    assert not removed
    assert stripped is original
    assert strip_location(strip_location(jpeg(100, 80, gps=True))[0])[1] is False


def _with_segment(data: bytes, marker: int, payload: bytes) -> bytes:
    segment = bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload
    return data[:2] + segment + data[2:]


def test_xmp_with_gps_and_trailing_frames_are_dropped() -> None:
    """An XMP packet naming GPS, extended XMP and data after the image (MPO frames) go."""
    base = jpeg(120, 90)
    xmp = b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta><exif:GPSLatitude>25,11N"
    extension = b"http://ns.adobe.com/xmp/extension/\x00" + b"0" * 40 + b"tude>55,16E"
    mpf = b"MPF\x00" + b"\x00" * 16
    tampered = _with_segment(
        _with_segment(_with_segment(base, 0xE1, xmp), 0xE1, extension), 0xE2, mpf
    )
    tampered += jpeg(60, 40, gps=True)  # a second frame with a location of its own
    stripped, removed = strip_location(tampered)
    assert removed
    assert b"GPSLatitude" not in stripped
    assert b"tude>55" not in stripped
    assert b"MPF\x00" not in stripped
    assert stripped.endswith(b"\xff\xd9")
    assert stripped.count(b"\xff\xd8") == 1
    assert pixels(stripped) == pixels(base)


def test_xmp_without_gps_is_kept() -> None:
    """An XMP packet with no location in it is kept byte for byte."""
    xmp = b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta><dc:title>look</dc:title>"
    data = _with_segment(jpeg(50, 40), 0xE1, xmp)
    assert strip_location(data) == (data, False)


def test_exif_that_cannot_be_walked_is_dropped_whole() -> None:
    """EXIF whose GPS pointer leads outside the block is removed entirely, never kept."""
    tiff = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 1)
    tiff += struct.pack("<HHII", 0x8825, 4, 1, 5000) + struct.pack("<I", 0)
    data = _with_segment(jpeg(50, 40), 0xE1, b"Exif\x00\x00" + tiff)
    stripped, removed = strip_location(data)
    assert removed
    assert b"Exif\x00\x00II" not in stripped
    assert pixels(stripped) == pixels(data)


def test_big_endian_exif_is_handled() -> None:
    """A Motorola-order (MM) EXIF block has its GPS IFD removed too."""
    gps_ifd = struct.pack(">H", 1) + struct.pack(">HHII", 2, 5, 3, 56) + struct.pack(">I", 0)
    values = struct.pack(">6I", 25, 1, 11, 1, 51, 1)
    ifd0 = struct.pack(">H", 2)
    ifd0 += struct.pack(">HHI", 0x0112, 3, 1) + struct.pack(">HH", 6, 0)
    ifd0 += struct.pack(">HHII", 0x8825, 4, 1, 38) + struct.pack(">I", 0)
    tiff = b"MM\x00*" + struct.pack(">I", 8) + ifd0 + gps_ifd + values
    assert len(b"MM\x00*") + 4 + len(ifd0) == 38
    assert 38 + len(gps_ifd) == 56
    data = _with_segment(jpeg(50, 40), 0xE1, b"Exif\x00\x00" + tiff)
    stripped, removed = strip_location(data)
    assert removed
    assert values not in stripped
    with Image.open(io.BytesIO(stripped)) as image:
        assert image.getexif()[0x0112] == 6
        assert dict(image.getexif().get_ifd(0x8825)) == {}


@pytest.mark.parametrize(
    "broken",
    [b"", b"\x89PNG\r\n", b"\xff\xd8", b"\xff\xd8\xff\xe1\x00", b"\xff\xd8\xff\xdb\x00\x43ab"],
)
def test_broken_structure_is_an_error(broken: bytes) -> None:
    """What is not a sequence of JPEG segments raises JpegStructureError (never loops)."""
    with pytest.raises(JpegStructureError):
        strip_location(broken)


def test_truncated_scan_is_an_error() -> None:
    """Image data that stops before the end marker is refused."""
    data = jpeg(200, 150)
    with pytest.raises(JpegStructureError, match="end marker"):
        strip_location(data[: len(data) // 2])


@given(st.binary(max_size=300))
def test_any_bytes_after_the_start_marker_end_in_result_or_error(tail: bytes) -> None:
    """Garbage after a start marker gives either an error or a JPEG-shaped result, never a hang."""
    try:
        result, _ = strip_location(b"\xff\xd8" + tail)
    except JpegStructureError:
        return
    assert result.startswith(b"\xff\xd8")
    assert result.endswith(b"\xff\xd9")


def test_a_camera_mpo_keeps_its_first_frame_only() -> None:
    """A two-frame MPO with GPS becomes its first frame as a plain JPEG, without location."""
    first = Image.new("RGB", (400, 300), (9, 9, 200))
    second = Image.new("RGB", (400, 300), (200, 9, 9))
    exif = Image.Exif()
    exif[0x8825] = GPS
    out = io.BytesIO()
    first.save(out, "MPO", save_all=True, append_images=[second], exif=exif)
    data = out.getvalue()
    with Image.open(io.BytesIO(data)) as image:
        assert (image.format, getattr(image, "n_frames", 1)) == ("MPO", 2)
    stripped, removed = strip_location(data)
    assert removed
    with Image.open(io.BytesIO(stripped)) as image:
        assert image.format == "JPEG"
        assert getattr(image, "n_frames", 1) == 1
    assert gps_of(stripped) == {}
    with Image.open(io.BytesIO(data)) as image:
        assert pixels(stripped) == image.convert("RGB").tobytes()


@given(
    st.integers(min_value=8, max_value=96),
    st.integers(min_value=8, max_value=96),
    st.tuples(*[st.floats(min_value=0, max_value=59, allow_nan=False)] * 3),
    st.booleans(),
    st.sampled_from(["N", "S"]),
)
def test_any_phone_jpeg_loses_its_location_and_nothing_else(
    width: int, height: int, dms: tuple[float, float, float], progressive: bool, ref: str
) -> None:
    """Whatever the size, scan mode and coordinates: GPS gone, pixels and length unchanged."""
    image = Image.new("RGB", (width, height), (width % 256, height % 256, 77))
    exif = Image.Exif()
    exif[0x0112] = 3
    exif[0x8825] = {1: ref, 2: dms, 3: "E", 4: dms}
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif, progressive=progressive)
    data = out.getvalue()
    stripped, removed = strip_location(data)
    assert removed
    assert len(stripped) == len(data)
    assert gps_of(stripped) == {}
    assert pixels(stripped) == pixels(data)
    with Image.open(io.BytesIO(stripped)) as reread:
        assert reread.getexif()[0x0112] == 3
