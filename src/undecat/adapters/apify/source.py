"""The Apify catalog source: run a brand's *task*, wait a bounded time, page its dataset.

Built on the real ``apify-client`` 3.x. Its ``call()`` returns a typed ``Run``; a run that
ended FAILED, TIMED-OUT or ABORTED does not raise, so the status is checked here and handed
to the job, which still stores whatever items the run produced.

When our wait (``APIFY_WAIT_SECONDS``) runs out first, the run comes back RUNNING. We then
**abort it**: nobody will read the items it would add later, it keeps costing compute units,
and left alone it would overlap next week's scheduled run of the same task. The items it
stored so far are read and kept; the run is reported as RUNNING (what we saw when we gave
up), so the job logs it failed and delists nothing.

The dataset is read page by page (1000 items a request), so memory holds one page, never
the dataset. Each page comes as bytes (``get_items_as_bytes``) and is split into its items'
own JSON texts by msgspec without decoding them: the item mapper decodes each item once,
straight into its wire shape, and the store writes the item's bytes as they came (where
``iterate_items`` would decode every page into dicts that are then read and encoded again).
Paging follows ``iterate_items``: the next offset is the items read so far, until a page is
empty; a page that is not JSON is an outage after the items of the pages before it.

Library errors are translated here: a refused token (401/403) is a
:class:`~undecat.errors.RemoteServiceError` with a message that names ``APIFY_TOKEN`` but
never the token; an unknown task (404) is a :class:`~undecat.errors.ConfigError`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta

import impit
import msgspec
import pydantic
from apify_client import ApifyClient
from apify_client.errors import (
    ApifyApiError,
    ApifyClientError,
    ForbiddenError,
    NotFoundError,
    UnauthorizedError,
)

from undecat.errors import ConfigError, RemoteCredentialsError, RemoteServiceError, UndecatError
from undecat.redact import Secret, redact_text, redact_url
from undecat.text import one_line

__all__ = ["FINISHED", "ApifyCatalogSource", "ApifyRun", "task_variable"]

_log = logging.getLogger("undecat.apify")

#: The statuses after which a run changes no more.
FINISHED = frozenset({"SUCCEEDED", "FAILED", "TIMED-OUT", "ABORTED"})


def task_variable(brand: str) -> str:
    """Return the environment variable that holds ``brand``'s Apify task id."""
    return f"APIFY_TASK_{brand.upper()}"


class ApifyRun:
    """One run of a brand's Apify task: its dataset items, then its status."""

    def __init__(
        self,
        source: ApifyCatalogSource,
        run_id: str,
        dataset_id: str,
        status: str,
        reason: str | None = None,
    ) -> None:
        self.run_id: str | None = run_id
        self.dataset_id = dataset_id
        self._source = source
        self._status = status
        self._reason = reason

    def __repr__(self) -> str:
        return f"ApifyRun(run_id={self.run_id!r}, status={self._status!r})"

    def items(self) -> Iterator[msgspec.Raw]:
        """Yield the dataset's items, each as its JSON text, fetched one page at a time."""
        what = f"reading dataset {self.dataset_id} of Apify run {self.run_id}"
        dataset = self._source.client.dataset(self.dataset_id)
        offset = 0
        while True:
            with self._source.translated(what):
                page = _split(
                    dataset.get_items_as_bytes(offset=offset, limit=self._source.page_size)
                )
            yield from page
            if not page:
                return
            offset += len(page)

    def status(self) -> str:
        """Return the run's status: SUCCEEDED, FAILED, TIMED-OUT, ABORTED or RUNNING."""
        return self._status

    def end_reason(self) -> str | None:
        """Return Apify's status message (and exit code), or why we gave up waiting."""
        return self._reason


class ApifyCatalogSource:
    """The :class:`~undecat.ports.CatalogSource` on Apify tasks (one per brand)."""

    def __init__(
        self,
        token: Secret,
        *,
        tasks: Mapping[str, str],
        api_url: str = "https://api.apify.com",
        wait: timedelta = timedelta(hours=3),
        max_retries: int = 4,
        min_delay_between_retries: timedelta = timedelta(milliseconds=500),
        page_size: int = 1000,
    ) -> None:
        self._token = token
        self._tasks = dict(tasks)
        self._api_url = api_url
        self._wait = wait
        self.page_size = page_size
        self.client = ApifyClient(
            token.reveal(),
            api_url=api_url,
            max_retries=max_retries,
            min_delay_between_retries=min_delay_between_retries,
        )

    def __repr__(self) -> str:
        return f"ApifyCatalogSource(api_url={redact_url(self._api_url)!r}, tasks={self._tasks!r})"

    def task_id(self, brand: str) -> str:
        """Return ``brand``'s task id; ConfigError naming the variable when there is none."""
        task = self._tasks.get(brand)
        if not task:
            raise ConfigError(
                f"no Apify task for {brand}: set {task_variable(brand)} to the task id"
                " (or run with --from-file PATH)"
            )
        return task

    def start(self, brand: str) -> ApifyRun:
        """Run ``brand``'s task, waiting at most the configured time; abort it if it runs on."""
        task = self.task_id(brand)
        with self.translated(f"running Apify task {task} of {brand}", brand=brand):
            run = self.client.task(task).call(wait_duration=self._wait)
        if run is None:
            raise RemoteServiceError(f"Apify lost track of the run of task {task} of {brand}")
        status = str(run.status)
        reason = _reason_of(run.status_message, run.exit_code, self._token)
        if status not in FINISHED:
            _log.warning(
                "apify run %s of %s still %s after %s: aborting it and keeping its items so far",
                run.id,
                brand,
                status,
                self._wait,
            )
            self._abort(run.id)
            status = "RUNNING"
            waited = f"still running after APIFY_WAIT_SECONDS ({self._wait}): aborted by undecat"
            reason = f"{waited}; last status message: {reason}" if reason else waited
        return ApifyRun(self, run.id, run.default_dataset_id, status, reason)

    def _abort(self, run_id: str) -> None:
        try:
            with self.translated(f"aborting Apify run {run_id}"):
                self.client.run(run_id).abort()
        except UndecatError as exc:
            # The run is already given up on; failing to abort it must not hide its items.
            _log.warning("could not abort apify run %s: %s", run_id, exc)

    @contextmanager
    def translated(self, what: str, *, brand: str | None = None) -> Iterator[None]:
        """Turn apify-client, Impit and validation errors inside the block into undecat errors."""
        secrets = (self._token.reveal(),)
        try:
            yield
        except UnauthorizedError as exc:
            raise RemoteCredentialsError(
                f"{what}: Apify refused the token (401 Unauthorized): check APIFY_TOKEN",
                variable="APIFY_TOKEN",
            ) from exc
        except ForbiddenError as exc:
            raise RemoteServiceError(
                f"{what}: the Apify token may not do this (403 Forbidden):"
                f" {one_line(redact_text(str(exc.message), secrets))}"
            ) from exc
        except NotFoundError as exc:
            hint = f": check {task_variable(brand)}" if brand else ""
            raise ConfigError(f"{what}: Apify does not know it (404 Not Found){hint}") from exc
        except ApifyApiError as exc:
            message = one_line(redact_text(str(exc.message), secrets))
            raise RemoteServiceError(
                f"{what}: Apify answered {exc.status_code} after {exc.attempt} attempt(s):"
                f" {message}"
            ) from exc
        except (impit.HTTPError, impit.InvalidURL) as exc:
            # impit's message is a multi-line hyper_util dump: one line is kept, cut short.
            message = one_line(redact_text(str(exc), secrets))
            raise RemoteServiceError(
                f"{what}: cannot reach Apify at {redact_url(self._api_url)} ({message}):"
                " check APIFY_API_URL and the network, then run the job again"
            ) from exc
        except (ApifyClientError, pydantic.ValidationError, KeyError, ValueError) as exc:
            # A body that is not JSON, a run object that does not validate, or a page
            # without its x-apify-pagination-* headers: the API is not speaking its protocol.
            message = one_line(redact_text(str(exc), secrets))
            raise RemoteServiceError(
                f"{what}: Apify sent an answer the client cannot read"
                f" ({type(exc).__name__}: {message})"
            ) from exc


_PAGE = msgspec.json.Decoder(list[msgspec.Raw])


def _split(page: bytes) -> list[msgspec.Raw]:
    """A page's items, each still as its JSON text; ValueError when the page is not JSON.

    Like apify-client's ``list_items``, a page that is one object is taken as one item.
    """
    try:
        return _PAGE.decode(page)
    except msgspec.ValidationError:
        if page.lstrip()[:1] == b"{":
            return [_one(page)]
        raise ValueError("a dataset page must be a JSON array of items") from None
    except msgspec.DecodeError as exc:
        raise ValueError(f"a dataset page is not JSON: {exc}") from None


def _one(page: bytes) -> msgspec.Raw:
    try:
        return msgspec.json.decode(page, type=msgspec.Raw)
    except msgspec.DecodeError as exc:
        raise ValueError(f"a dataset page is not JSON: {exc}") from None


_REASON_LIMIT = 500


def _reason_of(message: str | None, exit_code: int | None, token: Secret) -> str | None:
    """Apify's ``statusMessage`` and ``exitCode`` as one short line, the token scrubbed."""
    parts = []
    if message and message.strip():
        parts.append(" ".join(message.split()))
    if exit_code not in (None, 0):
        parts.append(f"exit code {exit_code}")
    if not parts:
        return None
    text = redact_text("; ".join(parts), (token.reveal(),))
    return text if len(text) <= _REASON_LIMIT else text[: _REASON_LIMIT - 1] + "…"
