"""The catalog bucket as a folder: for ``S3_ENDPOINT=file:///path`` and embedded runs."""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from undecat.adapters.objectstore.keying import (
    PublicUrls,
    checked_content_type,
    checked_key,
    folder_prefix,
)
from undecat.errors import ObjectStoreUnavailableError, ProductError

__all__ = ["FileObjectStore"]

_TEMP_PREFIX = ".tmp-"
# Errors that come from the key (a segment too long for the file system), not the disk.
_PRODUCT_ERRNOS = frozenset({errno.ENAMETOOLONG})


class FileObjectStore:
    """The :class:`~undecat.ports.ObjectStore` port over a folder, one file per key.

    A write goes to a temporary file in the target folder and is renamed into place, so a
    reader never sees half an object and a crash leaves at most a ``.tmp-*`` file (which
    :meth:`delete_prefix` removes and never counts). A key that would resolve outside the
    root (``..``, a symlink pointing out) is refused. The Content-Type is not kept: files
    are served by their ``.jpg`` name.
    """

    def __init__(self, root: Path, *, public_base_url: str | None = None) -> None:
        self.root = Path(root).resolve()
        self._urls = PublicUrls(public_base_url or self.root.as_uri())

    def __repr__(self) -> str:
        return f"FileObjectStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        path = (self.root / checked_key(key)).resolve()
        if path == self.root or not path.is_relative_to(self.root):
            raise ProductError("refused an object key that leaves the store's folder")
        return path

    def _outage(self, operation: str, exc: OSError) -> ObjectStoreUnavailableError:
        reason = os.strerror(exc.errno) if exc.errno else type(exc).__name__
        return ObjectStoreUnavailableError(f"file store {operation} in {self.root}: {reason}")

    def put(self, key: str, data: bytes, content_type: str) -> str:
        """Store ``data`` at ``key`` atomically; return its public URL."""
        checked_content_type(content_type)  # same contract as S3; a file is typed by its name
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(prefix=_TEMP_PREFIX, dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
                Path(temp).chmod(0o644)  # mkstemp makes 0600; objects are public
                Path(temp).replace(path)
            except BaseException:
                Path(temp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            if exc.errno in _PRODUCT_ERRNOS:
                raise ProductError("the object key is too long for the file store") from exc
            if isinstance(exc, (NotADirectoryError, IsADirectoryError)):
                raise ProductError("the object key collides with a folder of the store") from exc
            raise self._outage("put", exc) from exc
        return self._urls.url(key)

    def get(self, key: str) -> bytes:
        """Return the object at ``key``; ProductError when it does not exist."""
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise ProductError("file store get: the object does not exist") from exc
        except OSError as exc:
            if exc.errno in _PRODUCT_ERRNOS:
                raise ProductError("file store get: the object does not exist") from exc
            raise self._outage("get", exc) from exc

    def exists(self, key: str) -> bool:
        """Return whether an object is stored at ``key``."""
        path = self._path(key)
        try:
            return path.is_file()
        except OSError as exc:
            if exc.errno in _PRODUCT_ERRNOS:
                return False
            raise self._outage("exists", exc) from exc

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object in the folder ``prefix``; return how many."""
        folder = self.root / folder_prefix(prefix)
        top = folder.resolve()
        if not top.is_relative_to(self.root) or top == self.root:
            raise ProductError("refused a prefix that leaves the store's folder")
        if not top.is_dir():
            return 0
        deleted = 0
        try:
            # Bottom-up, so each folder is empty by the time it is removed.
            for current, dirs, files in os.walk(top, topdown=False):
                here = Path(current)
                for name in files:
                    (here / name).unlink()
                    if not name.startswith(_TEMP_PREFIX):
                        deleted += 1
                for name in dirs:
                    (here / name).rmdir()
            top.rmdir()
        except OSError as exc:
            raise self._outage("delete_prefix", exc) from exc
        return deleted

    def delete(self, keys: Sequence[str]) -> int:
        """Delete the objects at ``keys`` by key (a key with no object is fine); how many were."""
        deleted = 0
        for key in keys:
            try:
                self._path(key).unlink()
                deleted += 1
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                continue  # no object there, only a folder (or a file where a folder would be)
            except OSError as exc:
                if exc.errno in _PRODUCT_ERRNOS:
                    continue
                raise self._outage("delete", exc) from exc
        return deleted

    def public_url(self, key: str) -> str:
        """Return the public URL of ``key`` (whether or not it exists)."""
        return self._urls.url(key)

    def key_for_url(self, url: str) -> str:
        """Return the key of one of this store's public URLs; ProductError otherwise."""
        return self._urls.key(url)

    def close(self) -> None:
        """Nothing to release; present so every store closes alike."""
