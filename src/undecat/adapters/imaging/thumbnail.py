"""Small JPEG thumbnails of collages as ``data:`` URIs, for the self-contained HTML report."""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Iterable

import attrs
from PIL import Image, UnidentifiedImageError

from undecat.domain.report import CollageThumb
from undecat.errors import UndecatError
from undecat.ports import ObjectStore

__all__ = ["embed_thumbnails", "thumbnail_data_uri"]

_log = logging.getLogger("undecat.report")


def thumbnail_data_uri(data: bytes, *, width: int = 264, quality: int = 70) -> str:
    """Shrink an image to ``width`` pixels wide and return it as a JPEG ``data:`` URI."""
    with Image.open(io.BytesIO(data)) as image:
        image.draft("RGB", (width, width * 8))  # JPEG: decode at a reduced scale
        rgb = image.convert("RGB")
    if rgb.width > width:
        rgb = rgb.resize(
            (width, max(1, round(rgb.height * width / rgb.width))), Image.Resampling.LANCZOS
        )
    out = io.BytesIO()
    rgb.save(out, "JPEG", quality=quality, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode("ascii")


def embed_thumbnails(
    store: ObjectStore, collages: Iterable[CollageThumb]
) -> tuple[CollageThumb, ...]:
    """Read each collage from the store and attach its thumbnail; unreadable ones keep None."""
    done: list[CollageThumb] = []
    for collage in collages:
        try:
            data = store.get(store.key_for_url(collage.url))
            done.append(attrs.evolve(collage, data_uri=thumbnail_data_uri(data)))
        except (UndecatError, UnidentifiedImageError, OSError) as exc:
            _log.warning("no thumbnail for %s: %s", collage.url, exc)
            done.append(collage)
    return tuple(done)
