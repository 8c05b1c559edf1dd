"""botocore's exceptions, translated into the undecat tree in one place.

Whose fault an S3 failure is decides what the job does next, so the rule lives here only:

* the object (or its key) is at fault -- ``NoSuchKey``, ``KeyTooLongError``,
  ``EntityTooLarge``, ``InvalidObjectName`` -> :class:`~undecat.errors.ProductError`: that
  one product fails;
* everything else -- the endpoint down or timing out, refused credentials
  (``InvalidAccessKeyId``, ``SignatureDoesNotMatch``, ``AccessDenied``), a missing bucket,
  throttling, 5xx, an answer we do not understand ->
  :class:`~undecat.errors.ObjectStoreUnavailableError`: the batch stops and nothing is
  marked ``error``. An unknown failure counts as an outage because marking products
  ``error`` for the store's own trouble loses work; an outage only delays it.

Messages name the operation, the endpoint and the bucket, and the S3 error code; never an
object key (user media keys carry user ids), an access key or a secret. botocore's own
message is not copied: some (connection errors) quote the request URL with the key.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import botocore.exceptions

from undecat.errors import (
    ObjectStoreCredentialsError,
    ObjectStoreUnavailableError,
    ProductError,
    UndecatError,
)

__all__ = ["PRODUCT_CODES", "error_code", "translate_errors"]

#: S3 error codes that are one object's fault, not the store's.
PRODUCT_CODES = frozenset({"NoSuchKey", "KeyTooLongError", "EntityTooLarge", "InvalidObjectName"})

_CREDENTIAL_CODES = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "AccessDenied",
        "InvalidToken",
        "ExpiredToken",
        "AllAccessDisabled",
        "AccountProblem",
        "403",
    }
)


def error_code(exc: botocore.exceptions.ClientError) -> str:
    """Return the S3 error code of a ClientError (the HTTP status when there is none)."""
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return str(error.get("Code") or status or "Unknown")


@contextmanager
def translate_errors(operation: str, where: str) -> Iterator[None]:
    """Turn botocore's exceptions raised inside the block into undecat errors.

    ``where`` says which store (endpoint and bucket, no credentials) for the message.
    """
    try:
        yield
    except UndecatError:
        raise
    except botocore.exceptions.ClientError as exc:
        code = error_code(exc)
        if code in PRODUCT_CODES:
            what = "does not exist" if code == "NoSuchKey" else f"was refused ({code})"
            raise ProductError(f"S3 {operation} at {where}: the object {what}") from exc
        if code in _CREDENTIAL_CODES:
            raise ObjectStoreCredentialsError(
                f"S3 {operation} at {where}: the store refused our credentials ({code}); "
                "check S3_ACCESS_KEY and S3_SECRET_KEY",
                variable="S3_ACCESS_KEY",
            ) from exc
        if code == "NoSuchBucket":
            raise ObjectStoreUnavailableError(
                f"S3 {operation} at {where}: the bucket does not exist (NoSuchBucket)"
            ) from exc
        raise ObjectStoreUnavailableError(f"S3 {operation} at {where} failed: {code}") from exc
    except (
        botocore.exceptions.ConnectTimeoutError,
        botocore.exceptions.ReadTimeoutError,
    ) as exc:
        raise ObjectStoreUnavailableError(f"S3 {operation} at {where}: timed out") from exc
    except botocore.exceptions.EndpointConnectionError as exc:
        raise ObjectStoreUnavailableError(
            f"S3 {operation} at {where}: cannot connect to the endpoint"
        ) from exc
    except botocore.exceptions.BotoCoreError as exc:
        # Connection resets, truncated answers, credentials botocore cannot use, ...
        raise ObjectStoreUnavailableError(
            f"S3 {operation} at {where} failed: {type(exc).__name__}"
        ) from exc
