"""What a run's result means to the operator: the exit code and the log level of its summary.

The rule (docs/runbook.md, "Exit codes"):

* ``failed`` (an outage, bad configuration, a failed Apify run) -> exit 1;
* ``partial`` where **no** item succeeded (every product of the run failed, e.g.
  ``errors 20 of 20``) -> exit 1, because nothing moved and an alert must fire;
* ``partial`` where at least one item succeeded -> exit 0 (the failed products are ``error``
  with their reason, and ``retry_failed`` tries them again);
* a failure caused by configuration -- a refused password, token or key
  (:class:`~undecat.errors.CredentialsError`), a database that is not migrated or lacks a
  grant (:class:`~undecat.errors.DatabaseConfigurationError`) or a
  :class:`~undecat.errors.ConfigError` raised while running -> exit 2, like configuration
  refused before the run.
"""

from __future__ import annotations

from undecat.domain.models import RunResult
from undecat.domain.status import RunStatus

__all__ = ["EXIT_CONFIG", "EXIT_FAILED", "EXIT_OK", "exit_code", "run_failed", "succeeded"]

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2

# The stored error message of a run begins with the error's class name ("ConfigError: ...").
_CONFIG_CLASSES = (
    "ConfigError",
    "CredentialsError",
    "DatabaseConfigurationError",  # grants or migrations: the operator's to fix
    "DatabaseCredentialsError",
    "ObjectStoreCredentialsError",
    "ProxyCredentialsError",
    "RemoteCredentialsError",
)


def succeeded(result: RunResult) -> int:
    """How many items of the run went through (stored, updated, or fetched without error)."""
    return max(
        result.records_new + result.records_updated,
        result.records_fetched - result.records_errors,
    )


def run_failed(result: RunResult) -> bool:
    """Whether the run counts as failed: status ``failed``, or errors and nothing succeeded."""
    if result.status == RunStatus.FAILED:
        return True
    return result.records_errors > 0 and succeeded(result) <= 0


def exit_code(result: RunResult) -> int:
    """The runner's exit code for ``result`` (0 ok, 1 failed, 2 configuration)."""
    if not run_failed(result):
        return EXIT_OK
    head = (result.error_message or "").split(":", 1)[0].strip()
    return EXIT_CONFIG if head in _CONFIG_CLASSES else EXIT_FAILED
