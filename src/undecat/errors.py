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
    "CredentialsError",
    "DatabaseConfigurationError",
    "DatabaseCredentialsError",
    "DatabaseUnavailableError",
    "InvalidItemError",
    "MigrationError",
    "ObjectStoreCredentialsError",
    "ObjectStoreUnavailableError",
    "OutageError",
    "PhotoError",
    "PhotoTransportError",
    "ProductError",
    "ProxyCredentialsError",
    "ProxyError",
    "RemoteCredentialsError",
    "RemoteServiceError",
    "UndecatError",
    "UserMediaError",
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


class PhotoTransportError(PhotoError):
    """A photo request failed below HTTP, or was refused as a whole host refuses a client.

    Connection refused or reset, a name that does not resolve, TLS that does not verify, a
    proxy tunnel that could not be opened, a 403: alone, the photo's fault; the same failure
    on product after product is the proxy exit being blocked, an outage (the download job's
    circuit breaker decides). ``host`` names the host asked, ``forbidden`` marks a 403.
    """

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        host: str | None = None,
        forbidden: bool = False,
        product: str | None = None,
    ) -> None:
        super().__init__(message, url=url, product=product)
        self.host = host
        self.forbidden = forbidden


class OutageError(UndecatError):
    """A dependency of the whole batch is unavailable: stop, release, mark nothing."""


class DatabaseUnavailableError(OutageError):
    """PostgreSQL cannot be reached, refused our credentials, or went away."""


class DatabaseConfigurationError(DatabaseUnavailableError):
    """PostgreSQL refuses our role or lacks our schema: a grant, a migration or a setting is wrong.

    Insufficient privilege, an undefined table or column, a read-only transaction, a failed
    authentication: no row's data is at fault, so no row may be marked for it; the message
    names the role and the object.
    """


class ObjectStoreUnavailableError(OutageError):
    """The S3-compatible object store cannot be reached or refuses our keys."""


class ProxyError(OutageError):
    """The HTTP proxy is down or refuses our credentials (407)."""


class RemoteServiceError(OutageError):
    """An outside API (Apify, Ximilar, a brand site) is down, refuses the token, or misbehaves."""


class CredentialsError(OutageError):
    """A service refused our password, token or key: the message names the variable to fix.

    It is an outage to a job (stop, release, mark nothing) and configuration to the operator:
    the runners exit 2 for it, like a :class:`ConfigError`.
    """

    def __init__(self, message: str, *, variable: str) -> None:
        super().__init__(message)
        self.variable = variable


class DatabaseCredentialsError(CredentialsError, DatabaseUnavailableError):
    """PostgreSQL (or PgBouncer) refused the user or password of a ``*_DB_URL``."""


class ObjectStoreCredentialsError(CredentialsError, ObjectStoreUnavailableError):
    """The object store refused ``S3_ACCESS_KEY`` / ``S3_SECRET_KEY``."""


class ProxyCredentialsError(CredentialsError, ProxyError):
    """The proxy refused the credentials in ``PROXY_URL`` (407)."""


class RemoteCredentialsError(CredentialsError, RemoteServiceError):
    """An outside API refused its token (``APIFY_TOKEN``, ``XIMILAR_API_TOKEN``)."""


class BlockedError(RemoteServiceError):
    """A brand site answered with its anti-bot block (HTTP 403): back off, then stop."""


class UserMediaError(ProductError):
    """A user media request is refused (bad id or kind, not a JPEG, too large): nothing stored."""
