"""A local Ximilar collection server speaking the wire format our client expects.

``POST /{prefix}/insert|delete|get`` with ``Authorization: Token …`` and ``collection-id``;
records are kept by ``_id``. It refuses more than 10 records per request (HTTP 400, and
counts it), answers 429 when called faster than its rate limit (measured on a clock the
test shares with the client, so no test sleeps), fails chosen records inside a batch,
forces chosen statuses, and stalls a reply (after or before acting) to make the client
time out. Everything it did is kept for the assertions.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Generator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg
import pytest

from tests.fakes import FakeClock
from undecat.adapters.postgres.rows import PRODUCT_COLUMNS, product_from_row
from undecat.adapters.ximilar import RateLimiter, XimilarClient
from undecat.domain.ximilar import photo_slots
from undecat.ports import Clock
from undecat.redact import Secret

TOKEN = "xim-test-token-5f1c9a"
COLLECTION = "coll-7d2e40b1"
PREFIX = "similarity/fashion-new/v2"
MAX_RECORDS = 10


class FakeXimilar:
    """The collection's state and the knobs a test turns."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.lock = threading.Lock()
        self.records: dict[str, dict[str, Any]] = {}
        self.stored = Counter[str]()  # how many times each _id was stored
        self.resent_while_held = Counter[str]()  # inserts of an _id the collection held
        self.requests: list[tuple[str, int]] = []  # (method, records) of accepted calls
        self.oversized = 0
        self.throttled = 0
        self.rate_limit: float | None = None  # requests per second; None: unlimited
        self.rate_tolerance = 1e-6  # seconds of jitter forgiven
        self._last: float | None = None
        self.fail_records: dict[str, tuple[int, str]] = {}  # _id -> (code, text) on insert
        # Inserts it accepts but neither stores nor reports (the reply confirms a subset).
        self.silently_drop: Callable[[str], bool] = lambda _id: False
        self.forced: list[int] = []  # next HTTP statuses to answer instead of acting
        self.stall: list[str] = []  # next requests: "after" acting, or "before" acting
        self.stall_seconds = 1.0
        self.released = threading.Event()  # cuts stalls short when the server stops
        self.url = ""

    def count(self, method: str) -> int:
        """How many accepted requests of ``method`` arrived."""
        return sum(1 for m, _ in self.requests if m == method)

    def insert_requests(self) -> int:
        """How many accepted insert requests arrived."""
        return self.count("insert")


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # keep the test output quiet

    def do_POST(self) -> None:
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        method = self.path.rstrip("/").rsplit("/", 1)[-1]
        if not self.path.startswith(f"/{PREFIX}/") or method not in ("insert", "delete", "get"):
            self._reply(404, {"detail": "Not found."})
            return
        if (
            self.headers.get("Authorization") != f"Token {TOKEN}"
            or self.headers.get("collection-id") != COLLECTION
        ):
            self._reply(401, {"detail": "Invalid token."})
            return
        with fake.lock:
            if fake.rate_limit is not None:
                now = fake.clock()
                if (
                    fake._last is not None
                    and now - fake._last < 1.0 / fake.rate_limit - fake.rate_tolerance
                ):
                    fake.throttled += 1
                    self._reply(429, {"detail": "Request was throttled."})
                    return
                fake._last = now
            if fake.forced:
                self._reply(fake.forced.pop(0), {"status": {"code": 503, "text": "unavailable"}})
                return
            stall = fake.stall.pop(0) if fake.stall else None
        if stall == "before":
            fake.released.wait(fake.stall_seconds)
            self._reply(504, {"status": {"code": 504, "text": "too late"}})
            return
        payload = json.loads(body)
        records = payload.get("records", [])
        if len(records) > MAX_RECORDS:
            with fake.lock:
                fake.oversized += 1
            self._reply(400, {"status": {"code": 400, "text": f"at most {MAX_RECORDS} records"}})
            return
        with fake.lock:
            fake.requests.append((method, len(records)))
            answer = getattr(self, f"_{method}")(fake, records)
        if stall == "after":
            fake.released.wait(fake.stall_seconds)
        self._reply(200, answer)

    def _insert(self, fake: FakeXimilar, records: list[dict[str, Any]]) -> dict[str, Any]:
        done, skipped = [], []
        for record in records:
            rid = record["_id"]
            if rid in fake.records:
                fake.resent_while_held[rid] += 1
                skipped.append({"_id": rid, "_reason": {"status": {"code": 411, "text": "dup"}}})
            elif rid in fake.fail_records:
                code, text = fake.fail_records[rid]
                skipped.append({"_id": rid, "_reason": {"status": {"code": code, "text": text}}})
            elif fake.silently_drop(rid):
                continue
            else:
                fake.records[rid] = dict(record)
                fake.stored[rid] += 1
                done.append({"_id": rid, "_url": record.get("_url")})
        code = 210 if not skipped else 211
        return {"status": {"code": code, "text": "inserted"}, "records": done,
                "skipped_records": skipped}  # fmt: skip

    def _delete(self, fake: FakeXimilar, records: list[dict[str, Any]]) -> dict[str, Any]:
        done, skipped = [], []
        for record in records:
            rid = record["_id"]
            if fake.records.pop(rid, None) is not None:
                done.append({"_id": rid})
            else:
                skipped.append({"_id": rid, "_reason": {"status": {"code": 404, "text": "nf"}}})
        return {"status": {"code": 220 if not skipped else 206, "text": "deleted"},
                "records": done, "skipped_records": skipped}  # fmt: skip

    def _get(self, fake: FakeXimilar, records: list[dict[str, Any]]) -> dict[str, Any]:
        found = [{"_id": r["_id"]} for r in records if r["_id"] in fake.records]
        missing = [
            {"_id": r["_id"], "_reason": {"status": {"code": 404, "text": "not found"}}}
            for r in records
            if r["_id"] not in fake.records
        ]
        return {"status": {"code": 200, "text": "OK"}, "records": found,
                "skipped_records": missing}  # fmt: skip

    def _reply(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass  # the client timed out and went away


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True

    def __init__(self, fake: FakeXimilar) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake


def serve(clock: Callable[[], float]) -> Generator[FakeXimilar]:
    """Run a fake collection until the generator is closed."""
    fake = FakeXimilar(clock)
    server = _Server(fake)
    thread = threading.Thread(
        target=server.serve_forever, args=(0.02,), name="fake-ximilar", daemon=True
    )
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        fake.released.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


_SEED = """
    INSERT INTO raw_products (source, external_id, brand, name, category, price,
                              original_image_urls, image_urls, scraped_at, image_status,
                              index_scope)
    SELECT 'apify_' || %(brand)s, (700000000 + g)::text, %(brand)s, 'PRODUCT ' || g,
           'woman-dresses', 49.90 + g,
           (SELECT jsonb_agg('https://static.zara.net/p/' || g || '/' || i || '.jpg' ORDER BY i)
              FROM generate_series(1, %(photos)s) i),
           (SELECT jsonb_agg('http://s3.local/unde-images/originals/' || %(brand)s || '/'
                             || (700000000 + g) || '/' || i || '.jpg' ORDER BY i)
              FROM generate_series(1, %(photos)s) i),
           now(), %(image_status)s, %(scope)s
    FROM generate_series(%(start)s::int, %(end)s::int) AS g
    RETURNING id
"""


def seed_products(
    dsn: str,
    count: int,
    *,
    start: int = 0,
    photos: int = 3,
    scope: str = "pilot",
    image_status: str = "uploaded",
    brand: str = "zara",
) -> list[int]:
    """Insert ``count`` products whose photos are stored (by SQL, one statement); their ids."""
    params = {
        "brand": brand,
        "photos": photos,
        "scope": scope,
        "image_status": image_status,
        "start": start,
        "end": start + count - 1,
    }
    with psycopg.connect(dsn, autocommit=True) as conn:
        return [row[0] for row in conn.execute(_SEED, params).fetchall()]


def execute(dsn: str, query: str, params: dict[str, Any] | None = None) -> None:
    """Run one statement on the database, as an operator or another stage would."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(query.encode(), params)


def expire_ximilar_leases(dsn: str) -> None:
    """Let every Ximilar lease lapse, as if its worker had died long ago."""
    execute(
        dsn,
        "UPDATE raw_products SET ximilar_lease_until = now() - interval '1 second'"
        " WHERE ximilar_owner IS NOT NULL",
    )


def client_for(
    fake: FakeXimilar,
    clock: Clock,
    *,
    token: str = TOKEN,
    rate: float = 10.0,
    timeout: float = 0.3,
    backoff: tuple[float, ...] = (0.5, 1.0, 2.0),
) -> XimilarClient:
    """The real client of ``fake``, rate-limited on ``clock`` (close it after use)."""
    return XimilarClient(
        fake.url,
        PREFIX,
        Secret(token),
        Secret(COLLECTION),
        limiter=RateLimiter(rate, clock),
        clock=clock,
        timeout=timeout,
        backoff=backoff,
    )


def record_ids_of(dsn: str, where: str, value: object) -> list[str]:
    """The record id of every current photo of the product whose ``where`` column is ``value``."""
    query = f"SELECT {', '.join(PRODUCT_COLUMNS)} FROM raw_products WHERE {where} = %s"
    with psycopg.connect(dsn) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        cur.execute(query.encode(), (value,))
        row = cur.fetchone()
    assert row is not None
    return [slot.record_id for slot in photo_slots(product_from_row(row))]


@pytest.fixture
def ximilar_clock() -> FakeClock:
    """The clock the fake collection and the client under test share."""
    return FakeClock()


@pytest.fixture
def fake_ximilar(ximilar_clock: FakeClock) -> Iterator[FakeXimilar]:
    """A fake Ximilar collection on 127.0.0.1 that measures rates on ``ximilar_clock``."""
    yield from serve(ximilar_clock.monotonic)
