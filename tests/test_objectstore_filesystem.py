"""The filesystem store's own guarantees: atomic writes, a root nothing escapes, file URLs."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

import pytest

from undecat.adapters.objectstore import FileObjectStore
from undecat.domain.keys import collage_key, original_key
from undecat.errors import ProductError


def _files(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}


def test_put_leaves_no_temporary_file(tmp_path: Path) -> None:
    """After a put only the object is on disk (written beside it, then renamed into place)."""
    store = FileObjectStore(tmp_path)
    store.put(original_key("zara", "1", 1), b"a", "image/jpeg")
    store.put(original_key("zara", "1", 1), b"b", "image/jpeg")
    assert _files(tmp_path) == {"originals/zara/1/1.jpg"}
    assert (tmp_path / "originals/zara/1/1.jpg").stat().st_mode & 0o777 == 0o644


def test_failed_put_keeps_the_old_object(tmp_path: Path) -> None:
    """A write that raises half-way leaves the previous object whole and no temporary file."""
    store = FileObjectStore(tmp_path)
    key = collage_key("zara", "1")
    store.put(key, b"old", "image/jpeg")

    with pytest.raises(TypeError):
        # Not bytes: the write into the temporary file raises after it was created.
        store.put(key, object(), "image/jpeg")  # type: ignore[arg-type]
    assert store.get(key) == b"old"
    assert _files(tmp_path) == {"collages/zara/1.jpg"}


def test_symlink_out_of_the_root_is_refused(tmp_path: Path) -> None:
    """A folder inside the root that links outside it is never written through."""
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    (root / "originals").mkdir(parents=True)
    (root / "originals" / "zara").symlink_to(outside)
    store = FileObjectStore(root)
    with pytest.raises(ProductError, match="leaves"):
        store.put(original_key("zara", "1", 1), b"x", "image/jpeg")
    with pytest.raises(ProductError, match="leaves"):
        store.get(original_key("zara", "1", 1))
    assert not any(outside.iterdir())


def test_hand_made_traversal_keys_are_refused(tmp_path: Path) -> None:
    """Keys with '..' or absolute paths are refused before touching the disk."""
    store = FileObjectStore(tmp_path / "root")
    for key in ("../x.jpg", "a/../../x.jpg", "/etc/x.jpg", "a/./b.jpg"):
        with pytest.raises(ProductError):
            store.put(key, b"x", "image/jpeg")
    assert not (tmp_path / "x.jpg").exists()
    assert not (tmp_path / "root").exists() or _files(tmp_path / "root") == set()


def test_delete_prefix_sweeps_leftover_temporary_files(tmp_path: Path) -> None:
    """A temp file left by a crash is removed with its folder but not counted as an object."""
    store = FileObjectStore(tmp_path)
    store.put(original_key("zara", "1", 1), b"x", "image/jpeg")
    (tmp_path / "originals/zara/1/.tmp-crashed").write_bytes(b"half")
    assert store.delete_prefix("originals/zara/1/") == 1
    assert not (tmp_path / "originals/zara/1").exists()
    assert (tmp_path / "originals/zara").is_dir()


def test_file_urls_point_at_the_files(tmp_path: Path) -> None:
    """Public URLs are file:// URLs of the stored files, and only those map back to keys."""
    store = FileObjectStore(tmp_path / "objects")
    key = original_key("zara", "a b", 1)
    url = store.put(key, b"x", "image/jpeg")
    assert url.startswith("file://")
    assert Path(url2pathname(urlsplit(url).path)).read_bytes() == b"x"
    assert store.key_for_url(url) == key
    with pytest.raises(ProductError):
        store.key_for_url((tmp_path / "elsewhere.jpg").as_uri())
