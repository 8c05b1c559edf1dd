"""The private user media bucket (``unde-user-media``): pairs, signed URLs, erasure.

Layout (source document, "Bucket: unde-user-media")::

    {user_id}/photos/{photo_id}/original.jpg + thumb.jpg   (thumb: 200 px, made by the phone)
    {user_id}/tryon/{tryon_id}/result.jpg    + thumb.jpg
    {user_id}/saved/{outfit_id}/original.jpg + thumb.jpg

The bucket is private: nothing is readable without a signature, so the app hands out
time-limited presigned GET URLs. Ids are escaped like catalog ids
(:func:`undecat.domain.keys.escape_segment`), so no user id can reach another user's folder.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import TYPE_CHECKING

import attrs
import botocore.exceptions

from undecat.adapters.objectstore.client import S3Settings, make_client
from undecat.adapters.objectstore.errors import translate_errors
from undecat.adapters.objectstore.keying import checked_content_type
from undecat.adapters.objectstore.s3 import delete_folder
from undecat.domain.keys import MediaKind, user_media_keys, user_prefix
from undecat.errors import UndecatError
from undecat.redact import redact_url

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["MediaPair", "UserMediaStore"]

#: SigV4 presigned URLs live at most seven days.
_MAX_EXPIRY = timedelta(days=7)


@attrs.frozen
class MediaPair:
    """The two keys of one stored item: the full image and its thumbnail."""

    main: str
    thumb: str


class UserMediaStore:
    """Stores and serves one private bucket of user media."""

    def __init__(
        self,
        settings: S3Settings,
        bucket: str,
        *,
        url_lifetime: timedelta = timedelta(minutes=15),
        page_size: int = 1000,
    ) -> None:
        self.bucket = bucket
        self.url_lifetime = _checked_lifetime(url_lifetime)
        self._page_size = page_size
        self._client: S3Client = make_client(settings)
        self._where = f"{redact_url(settings.endpoint)} bucket {bucket}"

    def __repr__(self) -> str:
        return f"UserMediaStore({self._where!r})"

    def keys(self, user_id: str, kind: MediaKind, item_id: str) -> MediaPair:
        """Return the keys of an item (stored or not)."""
        main, thumb = user_media_keys(user_id, kind, item_id)
        return MediaPair(main, thumb)

    def store_pair(
        self,
        user_id: str,
        kind: MediaKind,
        item_id: str,
        main: bytes,
        thumb: bytes,
        *,
        content_type: str = "image/jpeg",
    ) -> MediaPair:
        """Store an item's image and thumbnail: both, or (as far as S3 lets us) neither.

        If the second upload fails, both keys are deleted before the error is raised, so
        a reader never finds a thumbnail without its image or the other way round, even
        when the item replaced an older one. A crash between the two uploads can still
        leave one of them; re-storing the item or deleting the user cleans it up.
        """
        pair = self.keys(user_id, kind, item_id)
        self._put("store_pair", pair.main, main, content_type)
        try:
            self._put("store_pair", pair.thumb, thumb, content_type)
        except UndecatError:
            # Best effort: the store that refused the upload may refuse the clean-up too,
            # and the caller should see the upload's error, not the clean-up's.
            with contextlib.suppress(
                botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError
            ):
                self._client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": pair.main}, {"Key": pair.thumb}], "Quiet": True},
                )
            raise
        return pair

    def _put(self, operation: str, key: str, data: bytes, content_type: str) -> None:
        with translate_errors(operation, self._where):
            self._client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=data,
                ContentType=checked_content_type(content_type),
            )

    def signed_url(self, key: str, lifetime: timedelta | None = None) -> str:
        """Return a presigned GET URL of ``key``, valid for ``lifetime`` (default: the store's).

        Signing is local (no request is made), so it works for keys not stored yet.
        """
        chosen = self.url_lifetime if lifetime is None else lifetime
        seconds = int(_checked_lifetime(chosen).total_seconds())
        with translate_errors("signed_url", self._where):
            return self._client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=seconds
            )

    def signed_pair(
        self, user_id: str, kind: MediaKind, item_id: str, lifetime: timedelta | None = None
    ) -> tuple[str, str]:
        """Return presigned GET URLs of an item's (image, thumbnail)."""
        pair = self.keys(user_id, kind, item_id)
        return self.signed_url(pair.main, lifetime), self.signed_url(pair.thumb, lifetime)

    def delete_user(self, user_id: str) -> int:
        """Delete everything one user has stored (listed page by page, deleted in batches)."""
        with translate_errors("delete_user", self._where):
            return delete_folder(
                self._client, self.bucket, user_prefix(user_id), page_size=self._page_size
            )

    def close(self) -> None:
        """Close the client's connection pool."""
        self._client.close()


def _checked_lifetime(lifetime: timedelta) -> timedelta:
    if not timedelta(seconds=1) <= lifetime <= _MAX_EXPIRY:
        raise ValueError("a signed URL must live between 1 second and 7 days")
    return lifetime
