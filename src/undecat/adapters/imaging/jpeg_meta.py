"""Location metadata out of a JPEG without re-encoding it: a rewrite of its segments only.

A phone photo's EXIF usually carries where it was taken (the GPS IFD). :func:`strip_location`
removes it and leaves every pixel, the quantisation tables and the entropy-coded scans byte
for byte as they were (no generation loss, and it costs microseconds, not a decode):

* in each ``APP1 Exif`` segment, the GPS IFD's entries and the values they point at are
  overwritten with zeros and the ``GPSInfo`` pointer (tag ``0x8825``) is removed from IFD0
  (the entries after it move up; the segment keeps its length, so no other offset moves).
  The rest of the EXIF (orientation, camera, time) stays. An EXIF block this code cannot
  walk safely is dropped whole rather than kept with a location inside;
* an ``APP1`` XMP packet that mentions ``GPS`` is dropped, and so is every extended-XMP chunk
  (a chunk boundary may split the word);
* anything after the first image's end marker (MPO secondary frames such as depth maps,
  vendor trailers -- each may carry its own EXIF) is dropped, with the ``APP2 MPF`` index
  that points at it.

Only the byte structure is read here; whether the JPEG decodes is checked by Pillow elsewhere.
"""

from __future__ import annotations

import struct

__all__ = ["JpegStructureError", "strip_location"]

_SOI = b"\xff\xd8"
_EXIF = b"Exif\x00\x00"
_XMP = b"http://ns.adobe.com/xap/1.0/\x00"
_XMP_EXTENSION = b"http://ns.adobe.com/xmp/extension/\x00"
_MPF = b"MPF\x00"
_GPS_IFD_TAG = 0x8825
#: Bytes per value of each TIFF field type (1 BYTE ... 12 DOUBLE, 13 IFD).
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})


class JpegStructureError(ValueError):
    """The bytes are not a well-formed sequence of JPEG segments."""


class _BadExifError(ValueError):
    """The EXIF block cannot be walked safely (offsets out of range, unknown types)."""


def strip_location(data: bytes) -> tuple[bytes, bool]:
    """Return ``data`` without location metadata, and whether anything was removed.

    When nothing is removed the very same bytes object is returned.
    """
    if not data.startswith(_SOI):
        raise JpegStructureError("no JPEG start-of-image marker")
    out = [_SOI]
    changed = False
    pos = 2
    size = len(data)
    while True:
        marker, pos = _next_marker(data, pos)
        if marker == 0xD9:  # end of image
            out.append(b"\xff\xd9")
            break
        if marker in _STANDALONE:
            out.append(bytes((0xFF, marker)))
            continue
        if pos + 2 > size:
            raise JpegStructureError("a segment is cut short")
        (length,) = struct.unpack_from(">H", data, pos)
        end = pos + length
        if length < 2 or end > size:
            raise JpegStructureError("a segment runs past the end of the file")
        payload = data[pos + 2 : end]
        segment = data[pos - 2 : end]
        pos = end
        kept, removed = _filtered(marker, payload, segment)
        changed |= removed
        if kept:
            out.append(kept)
        if marker == 0xDA:  # start of scan: copy the entropy-coded data up to the next marker
            scan_end = _scan_end(data, pos)
            out.append(data[pos:scan_end])
            pos = scan_end
    if pos < size:
        changed = True  # trailing frames or vendor data after the image: dropped
    if not changed:
        return data, False
    result = b"".join(out)
    if pos < size:
        result = _without_mpf(result)
    return result, True


def _next_marker(data: bytes, pos: int) -> tuple[int, int]:
    """The marker at ``pos`` (fill bytes skipped) and the position after it."""
    if pos >= len(data) or data[pos] != 0xFF:
        raise JpegStructureError("expected a marker, found other bytes (truncated or not a JPEG)")
    while pos < len(data) and data[pos] == 0xFF:
        pos += 1
    if pos >= len(data):
        raise JpegStructureError("the file ends inside a marker")
    return data[pos], pos + 1


def _scan_end(data: bytes, pos: int) -> int:
    """Where the entropy-coded data starting at ``pos`` ends (the next real marker)."""
    while True:
        found = data.find(b"\xff", pos)
        if found < 0 or found + 1 >= len(data):
            raise JpegStructureError("the image data has no end marker (truncated)")
        following = data[found + 1]
        # FF00 is an escaped data byte, FFD0-FFD7 restart markers inside the scan, FFFF fill.
        if following == 0x00 or 0xD0 <= following <= 0xD7 or following == 0xFF:
            pos = found + 1 if following == 0xFF else found + 2
            continue
        return found


def _filtered(marker: int, payload: bytes, segment: bytes) -> tuple[bytes, bool]:
    """The segment to write (empty: drop it) and whether location data was removed."""
    if marker == 0xE1 and payload.startswith(_EXIF):
        try:
            tiff, removed = _exif_without_gps(payload[len(_EXIF) :])
        except (_BadExifError, struct.error):
            return b"", True
        if not removed:
            return segment, False
        return segment[:4] + _EXIF + tiff, True
    if marker == 0xE1 and payload.startswith(_XMP_EXTENSION):
        return b"", True
    if marker == 0xE1 and payload.startswith(_XMP) and b"GPS" in payload:
        return b"", True
    return segment, False


def _exif_without_gps(tiff: bytes) -> tuple[bytes, bool]:
    """The TIFF block of an EXIF segment with its GPS IFD wiped and unlinked."""
    if tiff[:4] == b"II*\x00":
        order = "<"
    elif tiff[:4] == b"MM\x00*":
        order = ">"
    else:
        raise _BadExifError("not a TIFF header")
    buf = bytearray(tiff)
    (ifd0,) = struct.unpack_from(order + "I", buf, 4)
    count, entries = _ifd(buf, order, ifd0)
    gps_index = next(
        (i for i, (tag, *_) in enumerate(entries) if tag == _GPS_IFD_TAG),
        None,
    )
    if gps_index is None:
        return tiff, False
    gps_offset = entries[gps_index][3]
    gps_count, gps_entries = _ifd(buf, order, gps_offset)
    for _tag, kind, n, value in gps_entries:
        width = _TYPE_SIZES.get(kind)
        if width is None:
            raise _BadExifError("unknown field type in the GPS IFD")
        total = width * n
        if total > 4:
            if value + total > len(buf):
                raise _BadExifError("a GPS value lies outside the EXIF block")
            buf[value : value + total] = bytes(total)
    gps_end = gps_offset + 2 + 12 * gps_count + 4
    buf[gps_offset : min(gps_end, len(buf))] = bytes(min(gps_end, len(buf)) - gps_offset)
    # Unlink: move the entries after the pointer (and the next-IFD offset) up by 12 bytes.
    entry = ifd0 + 2 + 12 * gps_index
    tail_end = ifd0 + 2 + 12 * count + 4
    buf[entry : tail_end - 12] = buf[entry + 12 : tail_end]
    buf[tail_end - 12 : tail_end] = bytes(12)
    struct.pack_into(order + "H", buf, ifd0, count - 1)
    return bytes(buf), True


def _ifd(buf: bytearray, order: str, offset: int) -> tuple[int, list[tuple[int, int, int, int]]]:
    """The entry count and the (tag, type, count, value-or-offset) entries of one IFD."""
    if offset < 8 or offset + 2 > len(buf):
        raise _BadExifError("an IFD offset lies outside the EXIF block")
    (count,) = struct.unpack_from(order + "H", buf, offset)
    if offset + 2 + 12 * count + 4 > len(buf):
        raise _BadExifError("an IFD runs past the EXIF block")
    entries = [struct.unpack_from(order + "HHII", buf, offset + 2 + 12 * i) for i in range(count)]
    return count, entries


def _without_mpf(jpeg: bytes) -> bytes:
    """``jpeg`` without its ``APP2 MPF`` index (the frames it pointed at are gone)."""
    out = [_SOI]
    pos = 2
    while True:
        marker, after = _next_marker(jpeg, pos)
        if marker in {0xD9, 0xDA} or marker in _STANDALONE:
            out.append(jpeg[pos:])
            return b"".join(out)
        (length,) = struct.unpack_from(">H", jpeg, after)
        end = after + length
        if not (marker == 0xE2 and jpeg[after + 2 : after + 2 + len(_MPF)] == _MPF):
            out.append(jpeg[pos:end])
        pos = end
