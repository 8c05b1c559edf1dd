"""The Ximilar collection API on urllib3: ``insert``, ``delete`` and ``get`` by ``_id``.

Every method is ``POST {api_url}/{prefix}/{method}`` with ``Authorization: Token …``,
``collection-id: …`` and a JSON body of at most :data:`MAX_RECORDS_PER_REQUEST` records.
Not built on the official ``ximilar-client``: it drops failed batches and does not retry
network errors.

What is treated as what (the reply schema is undocumented; see :mod:`.wire`):

* 429, 5xx, time-outs and broken connections are retried with bounded backoff (a
  ``Retry-After`` in seconds is honoured, capped). 429 means "not processed", so the same
  request is sent again. After a 5xx or a time-out the insert *may* have landed: before
  sending it again the client asks ``get`` which of its ids the collection now holds and
  sends only the others, so a retry never pays twice for a record.
* 401/403 (token or collection refused), any other unexpected HTTP status, a top-level
  ``412`` (collection capacity) and exhausted retries are a
  :class:`~undecat.errors.RemoteServiceError`: an outage of the whole batch.
* 400/413/422, or a top-level error status inside a 2xx reply, on a request of several
  records: each record is sent alone, so one bad record cannot fail its neighbours. On a
  single record it is that record's refusal, with the reason.
* A record counts as inserted only when the reply lists it without an error; an id the
  reply does not mention (or reports as a duplicate) is looked up with ``get``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import urllib3

from undecat.adapters.http.backoff import Busy, retrying
from undecat.adapters.ximilar.limiter import RateLimiter
from undecat.adapters.ximilar.wire import (
    WireRecord,
    WireReply,
    converter,
    ids_body,
    parse_reply,
    records_body,
)
from undecat.domain.ximilar import MAX_RECORDS_PER_REQUEST, Confirmed, chunked
from undecat.errors import RemoteCredentialsError, RemoteServiceError, UndecatError
from undecat.ports import Clock
from undecat.redact import Secret, redact_text
from undecat.text import one_line

__all__ = ["DEFAULT_BACKOFF", "XimilarClient"]

#: Seconds to wait before the 2nd, 3rd, ... attempt of a request.
DEFAULT_BACKOFF: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)

_SPLIT_STATUSES = frozenset({400, 413, 422})  # the request's content was refused
_OUTAGE_CODES = frozenset({401, 403, 412})  # token, collection or capacity: every call fails
_DUPLICATE_CODE = 411  # seen in old client tests: an existing record (verify with get)
_NOT_FOUND_CODE = 404


@attrs.frozen
class _Answer:
    status: int
    body: Any  # decoded JSON, or None when the body is not JSON
    snippet: str  # the start of the body, for messages


class _TransientError(Busy):
    """A failure worth retrying; ``maybe_done``: the server may have acted on it."""

    def __init__(self, reason: str, *, maybe_done: bool, retry_after: float | None = None) -> None:
        super().__init__(reason, retry_after=retry_after)
        self.maybe_done = maybe_done


@attrs.define
class _Pending:
    """What a request still has to send, and whether to ask the collection first."""

    payload: dict[str, Any]
    recheck: bool = False


class XimilarClient:
    """The :class:`~undecat.ports.VisualIndex` of one Ximilar collection.

    Safe to share between threads; every request of every thread passes ``limiter``.
    """

    def __init__(
        self,
        api_url: str,
        prefix: str,
        token: Secret,
        collection_id: Secret,
        *,
        limiter: RateLimiter,
        clock: Clock,
        timeout: float = 30.0,
        backoff: Sequence[float] = DEFAULT_BACKOFF,
        max_retry_after: float = 60.0,
        ca_certs: str | None = None,
    ) -> None:
        self._base = f"{api_url.rstrip('/')}/{prefix.strip('/')}"
        self._headers = {
            "Authorization": f"Token {token.reveal()}",
            "collection-id": collection_id.reveal(),
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        self._secrets = (token.reveal(), collection_id.reveal())
        self._limiter = limiter
        self._clock = clock
        self._timeout = urllib3.Timeout(connect=min(10.0, timeout), read=timeout)
        self._backoff = tuple(backoff)
        self._max_retry_after = max_retry_after
        self._pool = urllib3.PoolManager(num_pools=2, maxsize=4, ca_certs=ca_certs)
        self._count_lock = threading.Lock()
        self.requests_sent = 0

    def __repr__(self) -> str:
        return f"XimilarClient({self._base!r}, {self._limiter!r})"

    def close(self) -> None:
        """Close the pooled connections."""
        self._pool.clear()

    # The port ---------------------------------------------------------------------------

    def insert(self, records: Sequence[Mapping[str, Any]]) -> Confirmed:
        """Insert records (``_id``, ``_url``, metadata); return the ids Ximilar confirmed."""
        try:
            wire = [converter.structure(dict(r), WireRecord) for r in records]
        except (TypeError, ValueError) as exc:
            raise UndecatError(f"Ximilar insert: malformed record: {exc}") from exc
        out = Confirmed()
        for chunk in chunked(wire, MAX_RECORDS_PER_REQUEST):
            self._insert_chunk(list(chunk), out)
        return out

    def delete(self, record_ids: Sequence[str]) -> Confirmed:
        """Delete records by ``_id``; return the ids no longer in the collection."""
        out = Confirmed()
        for chunk in chunked(list(dict.fromkeys(record_ids)), MAX_RECORDS_PER_REQUEST):
            self._delete_chunk(list(chunk), out)
        return out

    def existing(self, record_ids: Sequence[str]) -> set[str]:
        """Return which of ``record_ids`` the collection holds."""
        held: set[str] = set()
        for chunk in chunked(list(dict.fromkeys(record_ids)), MAX_RECORDS_PER_REQUEST):
            held |= self._held(list(chunk))
        return held

    # Methods, one request each ----------------------------------------------------------

    def _insert_chunk(self, chunk: list[WireRecord], out: Confirmed) -> None:
        pending = {r.id: r for r in chunk}

        def recheck() -> dict[str, Any] | None:
            # The last attempt may have landed: keep only what the collection lacks.
            held = self._held(list(pending))
            out.update(held)
            for rid in held:
                del pending[rid]
            return records_body(list(pending.values())) if pending else None

        answer = self._call("insert", records_body(chunk), recheck=recheck)
        if answer is None:
            return
        sent = list(pending.values())
        if answer.status in _SPLIT_STATUSES:
            self._refused(sent, f"HTTP {answer.status}: {answer.snippet}", out)
            return
        if not 200 <= answer.status < 300:
            raise self._unexpected("insert", answer)
        reply = parse_reply(answer.body)
        self._check_outage("insert", reply)
        done, refused, unsure = _classify(reply, [r.id for r in sent])
        out.update(done)
        out.reasons.update(refused)
        if unsure:
            out.update(self._held(unsure))
        left = [r for r in sent if r.id in unsure and r.id not in out]
        if left and reply.status is not None and reply.status.is_error:
            self._refused(left, reply.status.describe(), out)

    def _refused(self, records: list[WireRecord], reason: str, out: Confirmed) -> None:
        """Attribute a refusal: one record owns it; several are sent one by one."""
        if len(records) == 1:
            out.reasons[records[0].id] = self._clean(reason)
            return
        for record in records:
            self._insert_chunk([record], out)

    def _delete_chunk(self, ids: list[str], out: Confirmed) -> None:
        answer = self._call("delete", ids_body(ids))  # deleting twice is harmless: no recheck
        if answer is None:  # pragma: no cover  # only an insert recheck ends a call early
            return
        if _all_missing(answer):
            out.update(ids)
            return
        if not 200 <= answer.status < 300:
            raise self._unexpected("delete", answer)
        reply = parse_reply(answer.body)
        self._check_outage("delete", reply)
        done, refused, unsure = _classify(reply, ids)
        out.update(done)
        for rid, reason in refused.items():
            if reason.startswith(str(_NOT_FOUND_CODE)):
                out.add(rid)  # already gone is what a delete wants
            else:
                out.reasons[rid] = reason
        if unsure:
            out.update(set(unsure) - self._held(unsure))

    def _held(self, ids: list[str]) -> set[str]:
        if not ids:
            return set()
        answer = self._call("get", ids_body(ids, fields_to_return=("_id",)))
        if answer is None:  # pragma: no cover  # only an insert recheck ends a call early
            return set()
        if _all_missing(answer):
            return set()
        if not 200 <= answer.status < 300:
            raise self._unexpected("get", answer)
        reply = parse_reply(answer.body)
        self._check_outage("get", reply)
        if reply.records is None and not reply.skipped:
            raise RemoteServiceError(
                f"Ximilar get: the reply lists no records ({self._clean(answer.snippet)}),"
                " so which records exist cannot be told"
            )
        wanted = set(ids)
        return {
            o.id
            for o in reply.records or ()
            if o.id in wanted and (o.status is None or not o.status.is_error)
        }

    # Transport --------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        payload: dict[str, Any],
        *,
        recheck: Callable[[], dict[str, Any] | None] | None = None,
    ) -> _Answer | None:
        """Send with bounded retries; None when ``recheck`` found nothing left to send."""
        pending = _Pending(payload)

        def attempt() -> _Answer | None:
            if pending.recheck and recheck is not None:
                again = recheck()
                if again is None:
                    return None
                pending.payload = again
            try:
                return self._exchange(method, pending.payload)
            except _TransientError as exc:
                pending.recheck = exc.maybe_done
                raise

        policy = retrying(
            self._backoff, self._clock, on=_TransientError, max_retry_after=self._max_retry_after
        )
        try:
            return policy(attempt)
        except _TransientError as exc:
            raise RemoteServiceError(
                f"Ximilar {method}: gave up after {len(self._backoff) + 1} attempts: {exc.reason}"
            ) from exc

    def _exchange(self, method: str, payload: dict[str, Any]) -> _Answer:
        """One request, no retry; retryable outcomes raise :class:`_TransientError`."""
        self._limiter.acquire()
        with self._count_lock:
            self.requests_sent += 1
        url = f"{self._base}/{method}"
        try:
            response = self._pool.request(
                "POST",
                url,
                body=json.dumps(payload, ensure_ascii=False).encode(),
                headers=self._headers,
                timeout=self._timeout,
                retries=False,
                redirect=False,
            )
        except urllib3.exceptions.HTTPError as exc:
            raise _TransientError(
                self._clean(f"{type(exc).__name__}: {exc}"), maybe_done=True
            ) from exc
        data = response.data
        # An HTML error page is many lines: one line of it, cut to 200 characters, is kept.
        snippet = one_line(data[:2000].decode("utf-8", "replace"))
        if response.status == 429:
            raise _TransientError(
                "HTTP 429 too many requests",
                maybe_done=False,
                retry_after=_seconds(response.headers.get("Retry-After")),
            )
        if response.status >= 500:
            raise _TransientError(
                f"HTTP {response.status}: {self._clean(snippet)}",
                maybe_done=True,
                retry_after=_seconds(response.headers.get("Retry-After")),
            )
        if response.status in (401, 403):
            variable = "XIMILAR_API_TOKEN" if response.status == 401 else "XIMILAR_COLLECTION_ID"
            raise RemoteCredentialsError(
                f"Ximilar {method}: HTTP {response.status}, the token or the collection id"
                f" was refused: check {variable}",
                variable=variable,
            )
        try:
            body = json.loads(data) if data else None
        except ValueError:
            body = None
        return _Answer(status=response.status, body=body, snippet=snippet)

    def _check_outage(self, method: str, reply: WireReply) -> None:
        if reply.status is not None and reply.status.code in _OUTAGE_CODES:
            raise RemoteServiceError(
                f"Ximilar {method}: the collection refused the request:"
                f" {self._clean(reply.status.describe())}"
            )

    def _unexpected(self, method: str, answer: _Answer) -> RemoteServiceError:
        return RemoteServiceError(
            f"Ximilar {method}: unexpected HTTP {answer.status}: {self._clean(answer.snippet)}"
        )

    def _clean(self, text: str) -> str:
        return redact_text(text, self._secrets)


def _classify(reply: WireReply, ids: Sequence[str]) -> tuple[set[str], dict[str, str], list[str]]:
    """Split ``ids`` into done, refused (with reason) and unsure, from one reply."""
    wanted = set(ids)
    done: set[str] = set()
    refused: dict[str, str] = {}
    doubtful: set[str] = set()
    for outcome in reply.records or ():
        if outcome.id not in wanted:
            continue
        if outcome.status is None or not outcome.status.is_error:
            done.add(outcome.id)
        elif outcome.status.code == _DUPLICATE_CODE:
            doubtful.add(outcome.id)
        else:
            refused[outcome.id] = outcome.status.describe()
    for outcome in reply.skipped:
        if outcome.id not in wanted or outcome.id in done:
            continue
        if outcome.status is not None and outcome.status.code == _DUPLICATE_CODE:
            doubtful.add(outcome.id)
        else:
            refused[outcome.id] = outcome.status.describe() if outcome.status else "skipped"
    unsure = [rid for rid in ids if rid not in done and (rid not in refused or rid in doubtful)]
    for rid in unsure:
        refused.pop(rid, None)
    return done, refused, unsure


def _all_missing(answer: _Answer) -> bool:
    """A 404 whose JSON body says "not found": none of the records exist."""
    if answer.status != _NOT_FOUND_CODE or not isinstance(answer.body, dict):
        return False
    status = parse_reply(answer.body).status
    return status is not None and status.code == _NOT_FOUND_CODE


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff
