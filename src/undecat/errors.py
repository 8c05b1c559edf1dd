"""The one exception tree of undecat.

Every error the library raises derives from :class:`UndecatError`. The tree is split by
*whose fault* it is, because that decides what a job does next:

* :class:`ProductError` -- this product's input is bad (a 404 photo, a truncated JPEG, a
  malformed catalog item). The job marks that one product ``error`` and goes on.
* :class:`OutageError` -- something the whole batch depends on is down or refuses us (the
  database, S3, the proxy, an API token). The job stops, releases its leases, marks nothing
  ``error`` and exits non-zero.
* :class:`ConfigError` -- the environment is wrong; nothing starts.

Adapters translate psycopg, botocore and urllib3 exceptions into this tree at the boundary,
keeping the original as ``__cause__``; nothing outside ``undecat.adapters`` catches a library
exception.
"""

from __future__ import annotations

__all__ = [
    "BlockedError",
    "ConfigError",
    "DatabaseUnavailableError",
    "InvalidItemError",
    "LeaseLostError",
    "MigrationError",
    "ObjectStoreUnavailableError",
    "OutageError",
    "PhotoError",
    "ProductError",
    "ProxyError",
    "RemoteServiceError",
    "UndecatError",
]


class UndecatError(Exception):
    """Root of every error raised by undecat."""


class ConfigError(UndecatError):
    """A configuration value is missing or malformed; the message names the variable."""


class MigrationError(UndecatError):
    """A schema migration cannot be applied (edited after applying, failed SQL, ...)."""


class ProductError(UndecatError):
    """A fault of one product's data: that product fails, the batch goes on."""

    def __init__(self, message: str, *, product: str | None = None) -> None:
        super().__init__(message)
        self.product = product


class InvalidItemError(ProductError):
    """A catalog item cannot be mapped to a product (missing id, bad price, ...)."""


class PhotoError(ProductError):
    """A photo cannot be fetched or is not an acceptable image."""

    def __init__(self, message: str, *, url: str | None = None, product: str | None = None) -> None:
        super().__init__(message, product=product)
        self.url = url


class OutageError(UndecatError):
    """A dependency of the whole batch is unavailable: stop, release, mark nothing."""


class DatabaseUnavailableError(OutageError):
    """PostgreSQL cannot be reached, refused our credentials, or went away."""


class ObjectStoreUnavailableError(OutageError):
    """The S3-compatible object store cannot be reached or refuses our keys."""


class ProxyError(OutageError):
    """The HTTP proxy is down or refuses our credentials (407)."""


class RemoteServiceError(OutageError):
    """An outside API (Apify, Ximilar, a brand site) is down, refuses the token, or misbehaves."""


class BlockedError(RemoteServiceError):
    """A brand site answered with its anti-bot block (HTTP 403): back off, then stop."""


class LeaseLostError(UndecatError):
    """A worker tried to write a row whose lease it no longer holds."""
