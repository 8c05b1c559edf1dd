"""A local stand-in for the Apify API, speaking its wire format to the real ``apify-client``.

Only what the collect stage uses: ``POST /v2/actor-tasks/{id}/runs`` (gzip bodies accepted),
``GET /v2/actor-runs/{id}?waitForFinish=N``, ``POST /v2/actor-runs/{id}/abort`` and
``GET /v2/datasets/{id}/items?offset=&limit=`` with every ``x-apify-pagination-*`` header.
Run objects carry the fields the client's strict pydantic ``Run`` model requires. Auth is
``Authorization: Bearer <token>``; errors are ``{"error": {"type", "message"}}``.

A test scripts the next run of a task with :meth:`FakeApify.plan` (final status, how many
polls it takes, or never finishing; the dataset items) and can inject one-off failures with
:meth:`FakeApify.fail_next`. Items may be a list or a function of the index, so a benchmark
can serve 100,000 items without holding them.

Used as the pytest fixture ``fake_apify`` and directly by benchmarks/bench_collect.py.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs
import pytest

__all__ = ["FakeApify", "RunPlan", "fake_apify"]

TOKEN = "apify_api_test_token_0123456789"
_FINISHED = ("SUCCEEDED", "FAILED", "TIMED-OUT", "ABORTED")


@attrs.define
class RunPlan:
    """How the next run of a task behaves."""

    items: Sequence[Any] | None = None
    count: int = 0
    item_at: Callable[[int], Any] | None = None
    final_status: str = "SUCCEEDED"
    status_message: str | None = None  # Apify's statusMessage once the run has finished
    exit_code: int | None = 0
    # Polls without waitForFinish that still say RUNNING before the final status (a poll
    # that waits gets the final status at once); 0 = finished at start; -1 = never.
    polls: int = 1

    def total(self) -> int:
        """Number of items in the run's dataset."""
        return len(self.items) if self.items is not None else self.count

    def page(self, offset: int, limit: int) -> list[Any]:
        """The dataset items ``offset`` .. ``offset + limit``."""
        end = min(self.total(), offset + limit)
        if self.items is not None:
            return list(self.items[offset:end])
        assert self.item_at is not None
        return [self.item_at(i) for i in range(offset, end)]


@attrs.define
class _Run:
    id: str
    task_id: str
    dataset_id: str
    plan: RunPlan
    started_at: datetime
    status: str = "RUNNING"
    polls: int = 0
    finished_at: datetime | None = None

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "actId": "datasaurusZara1",
            "userId": "fakeUser0001",
            "actorTaskId": self.task_id,
            "startedAt": _iso(self.started_at),
            "finishedAt": _iso(self.finished_at) if self.finished_at else None,
            "status": self.status,
            "meta": {"origin": "API", "userAgent": "fake"},
            "stats": {"inputBodyLen": 0, "restartCount": 0},
            "options": {
                "build": "latest",
                "timeoutSecs": 3600,
                "memoryMbytes": 1024,
                "diskMbytes": 2048,
            },
            "buildId": "fakeBuild0001",
            "buildNumber": "0.0.1",
            "exitCode": self.plan.exit_code if self.finished_at else None,
            "statusMessage": self.plan.status_message if self.finished_at else "Running",
            "defaultKeyValueStoreId": f"kv{self.id}",
            "defaultDatasetId": self.dataset_id,
            "defaultRequestQueueId": f"rq{self.id}",
        }

    def finish(self, status: str) -> None:
        self.status = status
        self.finished_at = datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class FakeApify:
    """The fake API's state: task plans, runs, injected faults and the request log."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.plans: dict[str, RunPlan] = {}
        self.runs: dict[str, _Run] = {}
        self.requests: list[tuple[str, str, dict[str, list[str]], bytes]] = []
        self._faults: list[tuple[str, str, int]] = []
        self._bodies: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeApify:
        """Start serving in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(5)
        self._server.server_close()

    def plan(self, task_id: str, plan: RunPlan) -> RunPlan:
        """Script the runs of ``task_id``."""
        self.plans[task_id] = plan
        return plan

    def fail_next(self, method: str, path_part: str, status: int = 500, times: int = 1) -> None:
        """Answer the next ``times`` requests whose path contains ``path_part`` with ``status``."""
        with self._lock:
            self._faults.extend([(method, path_part, status)] * times)

    def answer_next(self, path_part: str, body: bytes) -> None:
        """Answer the next GET whose path contains ``path_part`` with 200 and ``body`` as is."""
        with self._lock:
            self._bodies.append((path_part, body))

    def count(self, method: str, path_part: str) -> int:
        """How many requests of ``method`` hit a path containing ``path_part``."""
        return sum(1 for m, p, _, _ in self.requests if m == method and path_part in p)

    # Request handling (called from the server's threads) --------------------------------

    def handle(  # noqa: PLR0911  # a router: one return per route
        self, method: str, path: str, query: dict[str, list[str]], headers: Any, body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            self.requests.append((method, path, query, body))
            for fault in self._faults:
                if fault[0] == method and fault[1] in path:
                    self._faults.remove(fault)
                    return fault[2], _error("internal-server-error", "Injected failure"), {}
            for part, raw in self._bodies:
                if method == "GET" and part in path:
                    self._bodies.remove((part, raw))
                    return 200, raw, {}
        if headers.get("Authorization") != f"Bearer {self.token}":
            return 401, _error("token-not-valid", "Authentication token is not valid."), {}
        parts = path.strip("/").split("/")
        if parts[:2] == ["v2", "actor-tasks"] and len(parts) == 4 and parts[3] == "runs":
            return self._start(parts[2].replace("~", "/"), method)
        if parts[:2] == ["v2", "actor-runs"] and len(parts) >= 3:
            run = self.runs.get(parts[2])
            if run is None:
                return 404, _error("record-not-found", "Actor run was not found"), {}
            if len(parts) == 4 and parts[3] == "abort" and method == "POST":
                if run.status not in _FINISHED:
                    run.finish("ABORTED")
                return 200, {"data": run.json()}, {}
            return self._poll(run, int(query.get("waitForFinish", ["0"])[0]))
        if parts[:2] == ["v2", "datasets"] and len(parts) == 4 and parts[3] == "items":
            return self._items(parts[2], query)
        return 404, _error("page-not-found", f"No route for {method} {path}"), {}

    def _start(self, task_id: str, method: str) -> tuple[int, Any, dict[str, str]]:
        plan = self.plans.get(task_id)
        if method != "POST" or plan is None:
            return 404, _error("record-not-found", "Actor task was not found"), {}
        number = len(self.runs) + 1
        run = _Run(
            id=f"run{number:05d}",
            task_id=task_id,
            dataset_id=f"ds{number:05d}",
            plan=plan,
            started_at=datetime.now(UTC),
        )
        if plan.polls == 0:
            run.finish(plan.final_status)
        self.runs[run.id] = run
        return 201, {"data": run.json()}, {}

    def _poll(self, run: _Run, wait: int) -> tuple[int, Any, dict[str, str]]:
        if run.status not in _FINISHED:
            run.polls += 1
            if run.plan.polls >= 0 and (wait > 0 or run.polls > run.plan.polls):
                # The real server holds a waiting request until the run finishes (<= 60 s).
                run.finish(run.plan.final_status)
            elif wait > 0:
                time.sleep(min(wait, 0.2))  # never finishes: hold the request a little
        return 200, {"data": run.json()}, {}

    def _items(
        self, dataset_id: str, query: dict[str, list[str]]
    ) -> tuple[int, Any, dict[str, str]]:
        run = next((r for r in self.runs.values() if r.dataset_id == dataset_id), None)
        if run is None:
            return 404, _error("record-not-found", "Dataset was not found"), {}
        offset = int(query.get("offset", ["0"])[0])
        limit = int(query.get("limit", ["999999999999"])[0])
        page = run.plan.page(offset, limit)
        headers = {
            "x-apify-pagination-total": str(run.plan.total()),
            "x-apify-pagination-offset": str(offset),
            "x-apify-pagination-count": str(len(page)),
            "x-apify-pagination-limit": str(limit),
            "x-apify-pagination-desc": "false",
        }
        return 200, page, headers


def _error(kind: str, message: str) -> dict[str, Any]:
    return {"error": {"type": kind, "message": message}}


def _handler_for(api: FakeApify) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # one request per connection: nothing left open

        def _serve(self, method: str) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if self.headers.get("Content-Encoding", "").lower() == "gzip" and body:
                body = gzip.decompress(body)
            status, payload, extra = api.handle(
                method, parts.path, parse_qs(parts.query), self.headers, body
            )
            if isinstance(payload, bytes):
                data = payload
            else:
                data = json.dumps(payload, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            del format, args  # quiet: the test output is for failures

    return Handler


@pytest.fixture
def fake_apify() -> Iterator[FakeApify]:
    """A running fake Apify API for one test."""
    api = FakeApify().start()
    try:
        yield api
    finally:
        api.stop()


def _serve_generated(count: int, task_id: str) -> None:
    """Serve ``count`` generated zara items for ``task_id`` until stdin closes (benchmarks).

    Run in its own process, so the fake's JSON encoding neither shares the benchmarked
    process's CPU time nor shows in its memory.
    """
    import sys  # noqa: PLC0415

    from tests.strategies import zara_item  # noqa: PLC0415

    api = FakeApify().start()
    api.plan(task_id, RunPlan(count=count, item_at=lambda n: zara_item(500_000_000 + n)))
    print(api.url, flush=True)
    try:
        sys.stdin.read()
    finally:
        api.stop()


if __name__ == "__main__":
    import sys

    _serve_generated(int(sys.argv[1]), sys.argv[2])
