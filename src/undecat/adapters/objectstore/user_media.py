"""The private user media bucket (``unde-user-media``) on S3: pairs, signed URLs, deletes.

Layout (source document, "Bucket: unde-user-media")::

    {user_id}/photos/{photo_id}/original.jpg + thumb.jpg   (thumb: 200 px, made by the phone)
    {user_id}/tryon/{tryon_id}/result.jpg    + thumb.jpg
    {user_id}/saved/{outfit_id}/original.jpg + thumb.jpg

The bucket is private and allows no listing: nothing here lists it (deleting a user is driven
by the index in PostgreSQL, :mod:`undecat.adapters.postgres.user_media`), and the tests run it
with credentials the server refuses LIST for. Every method takes checked
:class:`~undecat.domain.keys.MediaItem` values, never a raw key, so no caller can sign or
delete a key outside the layout (another user's object, say).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

import botocore.exceptions

from undecat.adapters.objectstore.client import S3Settings, make_client
from undecat.adapters.objectstore.errors import translate_errors
from undecat.domain.keys import MediaItem
from undecat.domain.user_media import checked_lifetime
from undecat.errors import ObjectStoreUnavailableError
from undecat.redact import redact_url

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

__all__ = ["UserMediaStore"]

_JPEG = "image/jpeg"


class UserMediaStore:
    """The objects of one private user media bucket, addressed by checked items only."""

    def __init__(self, settings: S3Settings, bucket: str) -> None:
        self.bucket = bucket
        self._client: S3Client = make_client(settings)
        self._where = f"{redact_url(settings.endpoint)} bucket {bucket}"

    def __repr__(self) -> str:
        return f"UserMediaStore({self._where!r})"

    def put_pair(self, item: MediaItem, main: bytes, thumb: bytes) -> None:
        """Upload the item's image, then its thumbnail (overwriting what was there).

        Both or neither is the caller's part (:class:`undecat.user_media.UserMedia`): on an
        error it deletes the item with :meth:`delete_items`.
        """
        self._put(item.main_key, main)
        self._put(item.thumb_key, thumb)

    def _put(self, key: str, data: bytes) -> None:
        with translate_errors("put user media", self._where):
            self._client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=_JPEG)

    def signed_urls(self, item: MediaItem, lifetime: timedelta) -> tuple[str, str]:
        """Presigned (SigV4) GET URLs of the item's (image, thumbnail), valid for ``lifetime``.

        Signing is local (no request is made). The signature covers the path, so a URL
        edited to another key is refused by the server.
        """
        seconds = int(checked_lifetime(lifetime).total_seconds())
        with translate_errors("sign user media", self._where):
            return (
                self._client.generate_presigned_url(
                    "get_object",
                    Params={"Bucket": self.bucket, "Key": item.main_key},
                    ExpiresIn=seconds,
                ),
                self._client.generate_presigned_url(
                    "get_object",
                    Params={"Bucket": self.bucket, "Key": item.thumb_key},
                    ExpiresIn=seconds,
                ),
            )

    def delete_items(self, items: Sequence[MediaItem]) -> None:
        """Delete both objects of each item, 500 items (1000 keys) per request.

        Keys that do not exist count as deleted (S3 semantics), so a retry is harmless. A key
        the store refused to delete raises, and nothing may be forgotten from the index.
        """
        for start in range(0, len(items), 500):
            batch: list[ObjectIdentifierTypeDef] = [
                {"Key": key} for item in items[start : start + 500] for key in item.keys
            ]
            with translate_errors("delete user media", self._where):
                answer = self._client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                )
            failed = answer.get("Errors", [])
            if failed:
                code = failed[0].get("Code", "Unknown")
                raise ObjectStoreUnavailableError(
                    f"S3 delete user media at {self._where}: {len(failed)} object(s) "
                    f"refused ({code})"
                )

    def close(self) -> None:
        """Close the client's connection pool."""
        with contextlib.suppress(botocore.exceptions.BotoCoreError):
            self._client.close()
