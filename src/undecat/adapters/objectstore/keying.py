"""Key checks and public URLs shared by every object store adapter."""

from __future__ import annotations

import re
from urllib.parse import quote, unquote, urlsplit

from undecat.domain.keys import is_safe_key
from undecat.errors import ProductError

__all__ = ["PublicUrls", "checked_content_type", "checked_key", "folder_prefix"]

# type/subtype, optionally parameters; printable ASCII only, so it is a valid header value.
_CONTENT_TYPE = re.compile(r"[A-Za-z0-9][\w.+-]*/[A-Za-z0-9][\w.+-]*(?:[ \t]*;[ -~]*)?", re.ASCII)


def checked_key(key: str) -> str:
    """Return ``key`` if a store may accept it; ProductError otherwise.

    Keys are built from catalog data by :mod:`undecat.domain.keys`, which only makes safe
    ones, so an unsafe key here is that product's data slipping past the key rules: it fails
    the product and never touches the bucket. The message does not repeat the key.
    """
    if not is_safe_key(key):
        raise ProductError("refused an unsafe object key (empty, too long, '..' or control chars)")
    return key


def checked_content_type(content_type: str) -> str:
    """Return ``content_type`` if it is a well-formed media type; ProductError otherwise.

    It may come from a brand CDN's answer, and a CR/LF in it would otherwise surface as a
    bare ValueError from http.client deep inside the upload.
    """
    if not _CONTENT_TYPE.fullmatch(content_type):
        raise ProductError("refused a malformed Content-Type for an object")
    return content_type


def folder_prefix(prefix: str) -> str:
    """Return ``prefix`` as a folder (ending in ``/``); ValueError for the whole bucket.

    ``originals/zara/12`` and ``originals/zara/12/`` both mean the folder, never also
    ``originals/zara/123/``: a prefix without its slash would delete a neighbour's photos.
    """
    folder = prefix if prefix.endswith("/") else prefix + "/"
    if folder == "/" or not is_safe_key(folder.rstrip("/")):
        raise ValueError("delete_prefix needs a non-empty, safe folder prefix")
    return folder


class PublicUrls:
    """Public URLs of a bucket's keys under one base URL, and back."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    def url(self, key: str) -> str:
        """Return the public URL of ``key`` (each segment percent-quoted, slashes kept)."""
        return f"{self.base_url}/{quote(checked_key(key), safe='/')}"

    def key(self, url: str) -> str:
        """Return the key of a URL made by :meth:`url`; ProductError for any other URL."""
        head = self.base_url + "/"
        if not url.startswith(head) or urlsplit(url).query or urlsplit(url).fragment:
            raise ProductError("URL is not under this store's public base URL")
        key = unquote(url[len(head) :])
        # Only the exact URL this store would make is accepted, so two spellings of one
        # URL never name two keys, and nothing odd reaches the bucket.
        if not is_safe_key(key) or self.url(key) != url:
            raise ProductError("URL is not a public URL of this store")
        return key
