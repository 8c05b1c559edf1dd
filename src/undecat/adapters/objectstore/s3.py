"""The catalog bucket on an S3-compatible store (Hetzner Object Storage, SeaweedFS, ...)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import botocore.exceptions

from undecat.adapters.objectstore.client import S3Settings, make_client
from undecat.adapters.objectstore.errors import error_code, translate_errors
from undecat.adapters.objectstore.keying import (
    PublicUrls,
    checked_content_type,
    checked_key,
    folder_prefix,
)
from undecat.redact import redact_url

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

__all__ = ["S3ObjectStore", "delete_folder"]


class S3ObjectStore:
    """The :class:`~undecat.ports.ObjectStore` port over one S3 bucket.

    Objects are written with their Content-Type and read back by key; public URLs are
    ``{public_base_url}/{quoted key}`` (the bucket is publicly readable, writes need keys).
    Failures are translated by :mod:`undecat.adapters.objectstore.errors`.
    """

    def __init__(
        self, settings: S3Settings, bucket: str, *, public_base_url: str, page_size: int = 1000
    ) -> None:
        self.bucket = bucket
        self._page_size = page_size
        self._settings = settings
        self._client: S3Client = make_client(settings)
        self._urls = PublicUrls(public_base_url)
        self._where = f"{redact_url(settings.endpoint)} bucket {bucket}"
        # A HEAD answer has no body, so a 404 does not say whether the key or the bucket is
        # missing; the bucket is checked once, on the first 404.
        self._bucket_seen = False

    def __repr__(self) -> str:
        return f"S3ObjectStore({self._where!r})"

    def put(self, key: str, data: bytes, content_type: str) -> str:
        """Store ``data`` at ``key`` with ``content_type``; return its public URL."""
        with translate_errors("put", self._where):
            self._client.put_object(
                Bucket=self.bucket,
                Key=checked_key(key),
                Body=data,
                ContentType=checked_content_type(content_type),
            )
        self._bucket_seen = True
        return self._urls.url(key)

    def get(self, key: str) -> bytes:
        """Return the object at ``key``; ProductError when it does not exist."""
        with translate_errors("get", self._where):
            response = self._client.get_object(Bucket=self.bucket, Key=checked_key(key))
            body = response["Body"]
            try:
                return body.read()
            finally:
                body.close()

    def exists(self, key: str) -> bool:
        """Return whether an object is stored at ``key``."""
        with translate_errors("exists", self._where):
            try:
                self._client.head_object(Bucket=self.bucket, Key=checked_key(key))
            except botocore.exceptions.ClientError as exc:
                if error_code(exc) not in ("404", "NoSuchKey", "NotFound"):
                    raise
                if not self._bucket_seen:
                    # Raises NoSuchBucket (an outage) when the bucket itself is missing.
                    self._client.head_bucket(Bucket=self.bucket)
                    self._bucket_seen = True
                return False
        return True

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object in the folder ``prefix``; return how many."""
        folder = folder_prefix(prefix)
        with translate_errors("delete_prefix", self._where):
            return delete_folder(self._client, self.bucket, folder, page_size=self._page_size)

    def delete(self, keys: Sequence[str]) -> int:
        """Delete the objects at ``keys`` by key (no listing), a thousand per request.

        Missing keys are fine; S3 does not say which existed, so the count is of keys asked.
        """
        checked = [checked_key(key) for key in keys]
        with translate_errors("delete", self._where):
            for start in range(0, len(checked), 1000):
                batch: list[ObjectIdentifierTypeDef] = [
                    {"Key": key} for key in checked[start : start + 1000]
                ]
                answer = self._client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                )
                failed = answer.get("Errors", [])
                if failed:
                    code = failed[0].get("Code", "Unknown")
                    raise botocore.exceptions.ClientError(
                        {"Error": {"Code": code, "Message": "batch delete failed"}},
                        "DeleteObjects",
                    )
        return len(checked)

    def public_url(self, key: str) -> str:
        """Return the public URL of ``key`` (whether or not it exists)."""
        return self._urls.url(key)

    def key_for_url(self, url: str) -> str:
        """Return the key of one of this store's public URLs; ProductError otherwise."""
        return self._urls.key(url)

    def close(self) -> None:
        """Close the client's connection pool."""
        self._client.close()


def delete_folder(client: S3Client, bucket: str, folder: str, *, page_size: int = 1000) -> int:
    """Delete every object under ``folder`` of ``bucket``; return how many.

    Listed page by page (``page_size`` keys, at most S3's 1000) and deleted one batch
    request per page, so a large folder costs a request per thousand objects, not per object.
    A key the store refused to delete fails the call (as a ClientError, for translation).
    """
    deleted = 0
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=folder, PaginationConfig={"PageSize": min(page_size, 1000)}
    )
    for page in pages:
        batch: list[ObjectIdentifierTypeDef] = [
            {"Key": item["Key"]} for item in page.get("Contents", []) if "Key" in item
        ]
        if not batch:
            continue
        answer = client.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
        failed = answer.get("Errors", [])
        if failed:
            code = failed[0].get("Code", "Unknown")
            raise botocore.exceptions.ClientError(
                {"Error": {"Code": code, "Message": "batch delete failed"}}, "DeleteObjects"
            )
        deleted += len(batch)
    return deleted
