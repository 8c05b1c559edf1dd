"""The Ximilar client against a local fake collection: batching, limits, retries, refusals."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fakes import FakeClock
from tests.fix_ximilar import COLLECTION, FakeXimilar, client_for, serve
from undecat.adapters.clock import SystemClock
from undecat.adapters.ximilar import XimilarClient
from undecat.adapters.ximilar.wire import parse_reply
from undecat.domain.ximilar import Confirmed
from undecat.errors import RemoteServiceError
from undecat.ports import Clock


def _records(n: int, prefix: str = "r") -> list[dict[str, Any]]:
    return [
        {"_id": f"{prefix}{i}", "_url": f"http://s3/{prefix}{i}.jpg", "sku_id": str(i)}
        for i in range(n)
    ]


def _client(fake: FakeXimilar, clock: Clock, **kw: Any) -> XimilarClient:
    return client_for(fake, clock, **kw)


@pytest.fixture
def client(fake_ximilar: FakeXimilar, ximilar_clock: FakeClock) -> Iterator[XimilarClient]:
    """A client of the fake collection, rate-limited to the fake's limit on the shared clock."""
    fake_ximilar.rate_limit = 10.0
    made = _client(fake_ximilar, ximilar_clock)
    yield made
    made.close()


def test_insert_sends_at_most_ten_records_per_request(
    client: XimilarClient, fake_ximilar: FakeXimilar
) -> None:
    """25 records go out as 10 + 10 + 5, every one confirmed, none refused for size."""
    confirmed = client.insert(_records(25))
    assert confirmed == {f"r{i}" for i in range(25)}
    assert fake_ximilar.requests == [("insert", 10), ("insert", 10), ("insert", 5)]
    assert fake_ximilar.oversized == 0
    assert fake_ximilar.records["r3"]["sku_id"] == "3"


def test_rate_limit_is_kept_without_real_sleeping(
    client: XimilarClient, fake_ximilar: FakeXimilar, ximilar_clock: FakeClock
) -> None:
    """Thirty requests at 10/s are spaced 0.1 s apart on the clock, and none is throttled."""
    started = ximilar_clock.monotonic()
    client.existing([f"x{i}" for i in range(300)])
    assert fake_ximilar.count("get") == 30
    assert fake_ximilar.throttled == 0
    assert ximilar_clock.monotonic() - started == pytest.approx(2.9)


def test_a_client_faster_than_the_limit_is_throttled_and_recovers(
    fake_ximilar: FakeXimilar, ximilar_clock: FakeClock
) -> None:
    """A client allowed 1000/s meets 429s from a 10/s collection, backs off, still inserts once."""
    fake_ximilar.rate_limit = 10.0
    fast = _client(fake_ximilar, ximilar_clock, rate=1000.0)
    try:
        confirmed = fast.insert(_records(30))
    finally:
        fast.close()
    assert confirmed == {f"r{i}" for i in range(30)}
    assert fake_ximilar.throttled > 0
    assert 0.5 in ximilar_clock.sleeps
    assert max(fake_ximilar.stored.values()) == 1


def test_server_errors_are_retried_with_backoff(
    client: XimilarClient, fake_ximilar: FakeXimilar, ximilar_clock: FakeClock
) -> None:
    """A 503 is retried after 0.5 s (with a get first), two 429s wait 0.5 s then 1 s."""
    fake_ximilar.forced = [503]
    assert client.insert(_records(3)) == {"r0", "r1", "r2"}
    assert [m for m, _ in fake_ximilar.requests] == ["get", "insert"]
    assert [s for s in ximilar_clock.sleeps if s >= 0.5] == [0.5]
    fake_ximilar.forced = [429, 429]
    assert client.existing(["r0"]) == {"r0"}
    assert [s for s in ximilar_clock.sleeps if s >= 0.5] == [0.5, 0.5, 1.0]


def test_a_timeout_after_the_insert_landed_never_inserts_twice(
    client: XimilarClient, fake_ximilar: FakeXimilar
) -> None:
    """The reply to an insert is lost to a time-out; the retry asks get and sends nothing again."""
    fake_ximilar.stall = ["after"]
    fake_ximilar.stall_seconds = 0.5
    assert client.insert(_records(4)) == {"r0", "r1", "r2", "r3"}
    assert fake_ximilar.resent_while_held == {}
    assert fake_ximilar.stored == dict.fromkeys(["r0", "r1", "r2", "r3"], 1)
    assert [m for m, _ in fake_ximilar.requests] == ["insert", "get"]


def test_a_timeout_before_acting_is_retried(
    client: XimilarClient, fake_ximilar: FakeXimilar
) -> None:
    """A request stalled before it was acted on is checked with get, then sent again."""
    fake_ximilar.stall = ["before"]
    fake_ximilar.stall_seconds = 0.5
    assert client.insert(_records(2)) == {"r0", "r1"}
    assert [m for m, _ in fake_ximilar.requests] == ["get", "insert"]


def test_exhausted_retries_are_an_outage(client: XimilarClient, fake_ximilar: FakeXimilar) -> None:
    """A collection that keeps answering 503 is a RemoteServiceError after bounded attempts."""
    fake_ximilar.forced = [503] * 10
    with pytest.raises(RemoteServiceError, match="gave up after 4 attempts"):
        client.existing(["a"])
    assert len(fake_ximilar.forced) == 6


def test_failed_records_inside_a_batch_are_read_one_by_one(
    client: XimilarClient, fake_ximilar: FakeXimilar
) -> None:
    """Two refused records of ten carry their reasons; the other eight are confirmed."""
    fake_ximilar.fail_records = {"r2": (400, "cannot download image"), "r7": (413, "too big")}
    confirmed = client.insert(_records(10))
    assert isinstance(confirmed, Confirmed)
    assert confirmed == {f"r{i}" for i in range(10)} - {"r2", "r7"}
    assert confirmed.reasons == {"r2": "400 cannot download image", "r7": "413 too big"}
    assert fake_ximilar.insert_requests() == 1


def test_a_refused_batch_is_sent_again_record_by_record(
    client: XimilarClient, fake_ximilar: FakeXimilar
) -> None:
    """An HTTP 400 for a batch of three is retried as three single-record inserts."""
    fake_ximilar.forced = [400]
    assert client.insert(_records(3)) == {"r0", "r1", "r2"}
    assert fake_ximilar.requests == [("insert", 1)] * 3


def test_re_inserting_a_held_record_counts_as_held(
    client: XimilarClient, fake_ximilar: FakeXimilar
) -> None:
    """A duplicate answer (411) is verified with get and the record counts as confirmed."""
    client.insert(_records(1))
    assert client.insert(_records(1)) == {"r0"}
    assert fake_ximilar.count("get") == 1


def test_refused_token_is_an_outage_that_never_shows_the_secrets(
    fake_ximilar: FakeXimilar, ximilar_clock: FakeClock
) -> None:
    """A wrong token is one RemoteServiceError (no retry) naming neither token nor collection."""
    bad = _client(fake_ximilar, ximilar_clock, token="wrong-token-123")
    try:
        with pytest.raises(RemoteServiceError) as caught:
            bad.insert(_records(1))
    finally:
        bad.close()
    text = f"{caught.value} {bad!r}"
    assert "401" in text
    assert "wrong-token-123" not in text
    assert COLLECTION not in text
    assert fake_ximilar.requests == []


def test_delete_treats_missing_records_as_gone(
    client: XimilarClient, fake_ximilar: FakeXimilar
) -> None:
    """Deleting a held and an unknown id leaves both gone, in one request."""
    client.insert(_records(1))
    assert client.delete(["r0", "never-there"]) == {"r0", "never-there"}
    assert fake_ximilar.records == {}
    assert fake_ximilar.count("delete") == 1


def test_existing_returns_only_held_ids(client: XimilarClient) -> None:
    """A get call answers which ids the collection holds, and nothing else."""
    client.insert(_records(3))
    assert client.existing(["r0", "r2", "zz"]) == {"r0", "r2"}


def test_real_time_rate_limit_keeps_a_real_collection_happy() -> None:
    """With the system clock, 10 requests at 25/s take about 0.36 s and meet no 429."""
    clock = SystemClock()
    server = serve(time.monotonic)
    fake = next(server)
    fake.rate_limit = 25.0
    # Loopback and scheduler jitter on a loaded machine can bunch two arrivals; an
    # unthrottled client would send all ten within milliseconds, far inside this margin.
    fake.rate_tolerance = 0.02  # half the 40 ms interval
    real = _client(fake, clock, rate=25.0)
    try:
        started = time.monotonic()
        real.existing([f"x{i}" for i in range(100)])
        elapsed = time.monotonic() - started
    finally:
        real.close()
        server.close()
    assert fake.count("get") == 10
    assert fake.throttled == 0
    assert elapsed >= 0.35


_STATUS = st.one_of(
    st.integers(100, 599),
    st.integers(100, 599).map(str),
    st.builds(lambda c, t: {"code": c, "text": t}, st.integers(100, 599), st.text(max_size=10)),
)


@given(
    status=_STATUS,
    ok=st.lists(st.text(min_size=1, max_size=8), max_size=5),
    skipped=st.lists(st.tuples(st.text(min_size=1, max_size=8), st.integers(300, 599)), max_size=5),
)
def test_reply_parsing_accepts_every_known_status_shape(
    status: Any, ok: list[str], skipped: list[tuple[str, int]]
) -> None:
    """Any shape of top-level status, records and skipped reasons reads to the same outcome."""
    payload = {
        "status": status,
        "records": [{"_id": rid} for rid in ok],
        "skipped_records": [
            {"_id": rid, "_reason": {"status": {"code": code, "text": "x"}}}
            for rid, code in skipped
        ],
    }
    reply = parse_reply(payload)
    assert reply.status is not None
    expected = int(status["code"] if isinstance(status, dict) else status)
    assert reply.status.code == expected
    assert [o.id for o in reply.records or ()] == ok
    assert all(o.status is None for o in reply.records or ())
    assert [(o.id, o.status.code if o.status else None) for o in reply.skipped] == skipped


@given(st.one_of(st.none(), st.integers(), st.text(), st.lists(st.integers())))
def test_a_reply_that_is_not_an_object_confirms_nothing(payload: Any) -> None:
    """Garbage in a reply body never reads as confirmed records."""
    assert not parse_reply(payload).records
