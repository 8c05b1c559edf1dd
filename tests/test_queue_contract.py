"""One WorkQueue contract, run against the in-memory fake and PostgresWorkQueue.

The fake is tests/fakes.MemoryQueue; PostgresWorkQueue runs on real PostgreSQL; both for the
download and collage stages: claim, complete, fail, lease expiry, fencing, fairness, giving
up. Then a Hypothesis stateful test of two workers interleaving claim / complete / fail /
release / lease expiry / crash.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Protocol

import psycopg
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from tests.fakes import MemoryQueue, product
from tests.seed import seed_rows
from undecat.adapters.postgres import Database, PostgresWorkQueue
from undecat.domain.models import Claim
from undecat.domain.stages import CollageStored, Outcome, PhotosStored, Stage
from undecat.domain.status import ImageStatus

LEASE = timedelta(minutes=10)


class Queue(Protocol):
    """The WorkQueue port plus the operator's requeue, as both implementations offer it."""

    stage: Stage

    def claim(self, owner: str, limit: int, lease: timedelta) -> list[Claim]: ...
    def extend(self, claims: list[Claim], lease: timedelta) -> int: ...
    def complete(self, claim: Claim, outcome: Outcome) -> bool: ...
    def fail(self, claim: Claim, message: str) -> bool: ...
    def complete_many(self, done: list[tuple[Claim, Outcome]]) -> list[bool]: ...
    def fail_many(self, failed: list[tuple[Claim, str]]) -> list[bool]: ...
    def release(self, claims: list[Claim]) -> int: ...
    def requeue_failed(self) -> int: ...
    def requeue(
        self, *, brand: str | None = None, reason: str | None = None, dry_run: bool = False
    ) -> int: ...


class Harness(Protocol):
    """A queue with rows in it, and what a test needs to look at or do to them."""

    queue: Queue

    def lapse(self) -> None:
        """Every lease held now lapses (its worker is gone)."""

    def state(self, row_id: int) -> tuple[str, str | None]:
        """The row's image status and the stage's own error reason."""

    def rows(self) -> list[int]:
        """Every row id, in order."""

    def written(self, row_id: int) -> str | None:
        """The URL the stage's completion wrote (first photo, or the collage)."""


class MemoryHarness:
    """The in-memory fake."""

    def __init__(self, stage: Stage, count: int, max_attempts: int) -> None:
        ready = ImageStatus.PENDING if stage is Stage.DOWNLOAD else ImageStatus.UPLOADED
        self.fake = MemoryQueue(stage, max_attempts=max_attempts)
        for n in range(1, count + 1):
            self.fake.add(product(n, image_status=ready))
        self.queue: Queue = self.fake

    def lapse(self) -> None:
        past = self.fake.clock.now() - timedelta(seconds=1)
        for row in self.fake.rows.values():
            if row.owner is not None:
                row.lease_until = past

    def state(self, row_id: int) -> tuple[str, str | None]:
        row = self.fake.rows[row_id]
        return str(row.status), row.error

    def rows(self) -> list[int]:
        return sorted(self.fake.rows)

    def written(self, row_id: int) -> str | None:
        row = self.fake.rows[row_id]
        return row.image_urls[0] if row.image_urls else row.collage_url


class PostgresHarness:
    """PostgresWorkQueue on the module's staging database."""

    def __init__(self, db: Database, dsn: str, stage: Stage, count: int, max_attempts: int) -> None:
        self.dsn, self.stage = dsn, stage
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("TRUNCATE raw_products RESTART IDENTITY")
        ready = "pending" if stage is Stage.DOWNLOAD else "uploaded"
        seed_rows(dsn, count, image_status=ready)
        self.queue: Queue = PostgresWorkQueue(
            db, stage, max_attempts=max_attempts, retry_spacing=timedelta(0)
        )

    def _run(self, query: str) -> list[tuple[object, ...]]:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            return conn.execute(query.encode()).fetchall()

    def lapse(self) -> None:
        p = self.stage.value
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(
                f"UPDATE raw_products SET {p}_lease_until = now() - interval '1 second'"
                f" WHERE {p}_owner IS NOT NULL".encode()
            )

    def state(self, row_id: int) -> tuple[str, str | None]:
        ((status, error),) = self._run(
            f"SELECT image_status, {self.stage.value}_error FROM raw_products WHERE id = {row_id}"
        )
        return str(status), None if error is None else str(error)

    def rows(self) -> list[int]:
        return [int(str(r[0])) for r in self._run("SELECT id FROM raw_products ORDER BY id")]

    def written(self, row_id: int) -> str | None:
        column = "image_urls->>0" if self.stage is Stage.DOWNLOAD else "collage_url"
        ((url,),) = self._run(f"SELECT {column} FROM raw_products WHERE id = {row_id}")
        return None if url is None else str(url)


@pytest.fixture(params=["memory", "postgres"])
def impl(request: pytest.FixtureRequest) -> str:
    """Which implementation the contract runs against."""
    return str(request.param)


@pytest.fixture(params=[Stage.DOWNLOAD, Stage.COLLAGE], ids=["download", "collage"])
def stage(request: pytest.FixtureRequest) -> Stage:
    """The claiming stage."""
    return Stage(request.param)


class Make(Protocol):
    def __call__(self, count: int, max_attempts: int = 3) -> Harness: ...


@pytest.fixture
def make(impl: str, stage: Stage, request: pytest.FixtureRequest) -> Make:
    """Build a harness of ``count`` rows ready for ``stage``."""

    def build(count: int, max_attempts: int = 3) -> Harness:
        if impl == "memory":
            return MemoryHarness(stage, count, max_attempts)
        db: Database = request.getfixturevalue("staging_db")
        dsn: str = request.getfixturevalue("staging_dsn")
        return PostgresHarness(db, dsn, stage, count, max_attempts)

    return build


def done_status(stage: Stage) -> str:
    return "uploaded" if stage is Stage.DOWNLOAD else "collage_ready"


def outcome(stage: Stage, claim: Claim) -> Outcome:
    if stage is Stage.DOWNLOAD:
        return PhotosStored((f"https://s3.test/{claim.product.id}/1.jpg",))
    return CollageStored(f"https://s3.test/collages/{claim.product.id}.jpg")


def outcome_url(stage: Stage, claim: Claim) -> str:
    written = outcome(stage, claim)
    assert isinstance(written, PhotosStored | CollageStored)
    return written.image_urls[0] if isinstance(written, PhotosStored) else written.collage_url


def test_claims_lowest_rows_once_each(make: Make, stage: Stage) -> None:
    """A claim leases up to N free rows, lowest ids first, each to one owner with a token."""
    h = make(5)
    first = h.queue.claim("a", 2, LEASE)
    second = h.queue.claim("b", 10, LEASE)
    ids = h.rows()
    assert [c.product.id for c in first] == ids[:2]
    assert [c.product.id for c in second] == ids[2:]
    assert all(c.attempt == 1 and c.token > 0 and c.stage == stage.value for c in first)
    assert h.queue.claim("c", 10, LEASE) == []


def test_complete_writes_once_and_only_for_the_holder(make: Make, stage: Stage) -> None:
    """The holder completes its claim once; a second completion or another owner's is refused."""
    h = make(1)
    (claim,) = h.queue.claim("a", 1, LEASE)
    forged = Claim(claim.stage, "b", 1, claim.lease_until, claim.product, token=claim.token)
    assert not h.queue.complete(forged, outcome(stage, claim))
    assert h.queue.complete(claim, outcome(stage, claim))
    assert not h.queue.complete(claim, outcome(stage, claim))
    assert h.state(claim.product.id) == (done_status(stage), None)
    assert h.queue.claim("a", 1, LEASE) == []


def test_fail_keeps_the_reason_in_the_stage_and_requeue_failed_retries(
    make: Make, stage: Stage
) -> None:
    """A failed row leaves the stage's queue with its reason; retry_failed brings it back."""
    h = make(1)
    (claim,) = h.queue.claim("a", 1, LEASE)
    assert h.queue.fail(claim, f"{stage.value}: broken photo")
    status, error = h.state(claim.product.id)
    # A download failure is image_status 'error'; a collage failure keeps the photos 'uploaded'.
    assert status == ("error" if stage is Stage.DOWNLOAD else "uploaded")
    assert error == f"{stage.value}: broken photo"
    assert h.queue.claim("a", 1, LEASE) == []
    assert h.queue.requeue_failed() == 1
    (again,) = h.queue.claim("a", 1, LEASE)
    assert again.attempt == 2
    assert h.state(claim.product.id)[1] is None


def test_lapsed_lease_goes_to_another_worker_and_fences_the_old_one(
    make: Make, stage: Stage
) -> None:
    """After a lease lapses another worker claims the row; the old claim can write nothing."""
    h = make(1)
    (old,) = h.queue.claim("a", 1, LEASE)
    h.lapse()
    (new,) = h.queue.claim("b", 1, LEASE)
    assert new.token != old.token
    assert not h.queue.complete(old, outcome(stage, old))
    assert not h.queue.fail(old, "stale")
    assert h.queue.extend([old], LEASE) == 0
    assert h.queue.release([old]) == 0
    assert h.queue.complete(new, outcome(stage, new))


def test_the_same_owner_reclaiming_a_lapsed_row_fences_its_own_stale_claim(
    make: Make, stage: Stage
) -> None:
    """Fencing is by claim token, not owner name: a stale claim of the same owner writes nothing."""
    h = make(1)
    (old,) = h.queue.claim("worker", 1, LEASE)
    h.lapse()
    (new,) = h.queue.claim("worker", 1, LEASE)
    assert not h.queue.fail(old, "stale worker thread")
    assert not h.queue.complete(old, outcome(stage, old))
    assert h.queue.complete(new, outcome(stage, new))
    assert h.state(new.product.id) == (done_status(stage), None)


def test_settling_many_writes_exactly_the_claims_still_held(make: Make, stage: Stage) -> None:
    """One call over held, taken-over (stale token) and forged claims writes only the held ones."""
    h = make(4)
    stale, *held = h.queue.claim("a", 4, LEASE)
    h.lapse()
    (taken,) = h.queue.claim("b", 1, LEASE)  # the lowest row again, under a new token
    assert taken.product.id == stale.product.id
    forged = Claim(held[0].stage, "b", 1, held[0].lease_until, held[0].product, held[0].token)
    done = [(c, outcome(stage, c)) for c in (stale, forged, held[0], held[1])]
    assert h.queue.complete_many(done) == [False, False, True, True]
    assert h.queue.fail_many([(stale, "stale"), (held[2], "broken photo")]) == [False, True]
    for claim in held[:2]:  # each row got its own outcome, not its neighbour's
        assert h.state(claim.product.id) == (done_status(stage), None)
        assert h.written(claim.product.id) == outcome_url(stage, claim)
    assert h.state(held[2].product.id)[1] == "broken photo"
    assert h.state(taken.product.id)[1] is None  # the new holder's row is untouched
    assert h.queue.complete_many([(taken, outcome(stage, taken))]) == [True]


def test_settling_nothing_writes_nothing(make: Make) -> None:
    """Empty input is an empty answer, and every claim stays held."""
    h = make(1)
    (claim,) = h.queue.claim("a", 1, LEASE)
    assert h.queue.complete_many([]) == []
    assert h.queue.fail_many([]) == []
    assert h.queue.extend([claim], LEASE) == 1


def test_a_claim_given_twice_in_one_call_is_written_once(make: Make, stage: Stage) -> None:
    """Duplicates act as if written in order: the first writes, the second finds no lease."""
    h = make(2)
    first, second = h.queue.claim("a", 2, LEASE)
    other: Outcome = PhotosStored(("https://s3.test/other.jpg",))
    if stage is Stage.COLLAGE:
        other = CollageStored("https://s3.test/other.jpg")
    done: list[tuple[Claim, Outcome]] = [(first, outcome(stage, first)), (first, other)]
    assert h.queue.complete_many(done) == [True, False]
    assert h.written(first.product.id) == outcome_url(stage, first)
    assert h.queue.fail_many([(second, "one"), (second, "two")]) == [True, False]
    assert h.state(second.product.id)[1] == "one"
    assert h.queue.fail_many([(first, "late")]) == [False]


def test_release_does_not_count_the_attempt(make: Make) -> None:
    """A released claim (an outage) is claimable again at the same attempt."""
    h = make(1)
    (claim,) = h.queue.claim("a", 1, LEASE)
    assert h.queue.release([claim]) == 1
    (again,) = h.queue.claim("b", 1, LEASE)
    assert again.attempt == 1


def test_every_claimable_row_is_tried_within_ceil_n_over_batch_claims(make: Make) -> None:
    """Rows failed after a try wait their turn: 5 rows, batch 2, all tried in 3 claims."""
    h = make(5)
    tried: list[int] = []
    for _ in range(3):
        for claim in h.queue.claim("a", 2, LEASE):
            tried.append(claim.product.id)
            assert h.queue.fail(claim, "try later")
    assert sorted(tried) == h.rows()
    assert h.queue.claim("a", 2, LEASE) == []


def test_rows_out_of_attempts_end_failed_with_a_reason(make: Make) -> None:
    """A row whose worker died on every attempt ends failed, never pending and unclaimable."""
    h = make(1, max_attempts=2)
    for _ in range(2):
        assert len(h.queue.claim("a", 1, LEASE)) == 1
        h.lapse()  # the worker died
    assert h.queue.claim("a", 1, LEASE) == []
    (row_id,) = h.rows()
    error = h.state(row_id)[1]
    assert error is not None
    assert "gave up after 2 attempts" in error
    assert h.queue.requeue_failed() == 0  # out of attempts: not retried on its own
    assert h.queue.requeue(reason="GAVE UP", dry_run=True) == 1
    assert h.queue.requeue(brand="bershka") == 0
    assert h.queue.requeue(reason="gave up") == 1
    (claim,) = h.queue.claim("a", 1, LEASE)
    assert claim.attempt == 1


def test_extend_pushes_only_held_leases(make: Make) -> None:
    """Extend renews the leases still held and reports how many."""
    h = make(2)
    claims = h.queue.claim("a", 2, timedelta(seconds=30))
    h.lapse()
    (taken,) = h.queue.claim("b", 1, LEASE)
    assert taken.product.id == claims[0].product.id
    assert h.queue.extend(claims, LEASE) == 1


# --- two workers, any interleaving ------------------------------------------------------------


class TwoWorkers(RuleBasedStateMachine):
    """Two workers claim, complete, fail, release, crash; leases lapse at any time.

    The model keeps the latest claim of every row: a write succeeds exactly when it comes
    from that claim, no row is finished twice, and in the end every row is finished or
    failed with a reason -- none is lost.
    """

    make: Make
    stage: Stage

    @initialize()
    def setup(self) -> None:
        self.h = self.make(6, max_attempts=3)
        self.ids = self.h.rows()
        self.held: dict[str, list[Claim]] = {"w1": [], "w2": []}
        self.latest: dict[int, tuple[str, int]] = {}  # row -> (owner, token) of its last claim
        self.settled: dict[int, str] = {}  # row -> "done" | "failed"
        self.finished: dict[int, int] = dict.fromkeys(self.ids, 0)

    @rule(worker=st.sampled_from(["w1", "w2"]), limit=st.integers(1, 3))
    def claim(self, worker: str, limit: int) -> None:
        for claim in self.h.queue.claim(worker, limit, LEASE):
            assert claim.product.id not in self.settled
            self.latest[claim.product.id] = (claim.owner, claim.token)
            self.held[worker].append(claim)

    def _current(self, claim: Claim) -> bool:
        return claim.product.id not in self.settled and self.latest.get(claim.product.id) == (
            claim.owner,
            claim.token,
        )

    @rule(worker=st.sampled_from(["w1", "w2"]), data=st.data())
    def complete(self, worker: str, data: st.DataObject) -> None:
        if not self.held[worker]:
            return
        claim = self.held[worker].pop(data.draw(st.integers(0, len(self.held[worker]) - 1)))
        expected = self._current(claim)
        assert self.h.queue.complete(claim, outcome(self.stage, claim)) == expected
        if expected:
            self.settled[claim.product.id] = "done"
            self.finished[claim.product.id] += 1

    @rule(worker=st.sampled_from(["w1", "w2"]), data=st.data())
    def fail(self, worker: str, data: st.DataObject) -> None:
        if not self.held[worker]:
            return
        claim = self.held[worker].pop(data.draw(st.integers(0, len(self.held[worker]) - 1)))
        expected = self._current(claim)
        assert self.h.queue.fail(claim, "bad photo") == expected
        if expected:
            self.settled[claim.product.id] = "failed"

    @rule(data=st.data(), failing=st.booleans())
    def settle_many(self, data: st.DataObject, failing: bool) -> None:
        """Both workers' claims (some perhaps stale, some twice) settled in one call."""
        pool = self.held["w1"] + self.held["w2"]
        if not pool:
            return
        picked = data.draw(st.lists(st.sampled_from(pool), max_size=6))
        for claim in picked:
            for worker in ("w1", "w2"):
                if claim in self.held[worker]:
                    self.held[worker].remove(claim)
        expected: list[bool] = []
        for claim in picked:  # in order: a duplicate finds its claim already settled
            expected.append(self._current(claim))
            if expected[-1]:
                self.settled[claim.product.id] = "failed" if failing else "done"
                self.finished[claim.product.id] += 0 if failing else 1
        if failing:
            assert self.h.queue.fail_many([(c, "bad batch") for c in picked]) == expected
        else:
            done = [(c, outcome(self.stage, c)) for c in picked]
            assert self.h.queue.complete_many(done) == expected

    @rule(worker=st.sampled_from(["w1", "w2"]))
    def release(self, worker: str) -> None:
        claims, self.held[worker] = self.held[worker], []
        expected = sum(1 for c in claims if self._current(c))
        assert self.h.queue.release(claims) == expected
        for claim in claims:
            if self._current(claim):
                del self.latest[claim.product.id]

    @rule(worker=st.sampled_from(["w1", "w2"]))
    def crash(self, worker: str) -> None:
        self.held[worker] = []  # the process died: its leases stay until they lapse

    @rule()
    def leases_lapse(self) -> None:
        self.h.lapse()

    @invariant()
    def never_finished_twice(self) -> None:
        if hasattr(self, "finished"):
            assert max(self.finished.values(), default=0) <= 1

    def teardown(self) -> None:
        if not hasattr(self, "h"):
            return
        # A third worker drains what is left once every lease lapsed: nothing is lost.
        self.h.lapse()
        while claims := self.h.queue.claim("drain", 10, LEASE):
            for claim in claims:
                assert claim.product.id not in self.settled
                assert self.h.queue.complete(claim, outcome(self.stage, claim))
                self.settled[claim.product.id] = "done"
        for row_id in self.ids:
            status, error = self.h.state(row_id)
            if self.settled.get(row_id) == "done":
                assert (status, error) == (done_status(self.stage), None)
            else:  # failed by a worker, or given up after its attempts: with a reason
                assert error is not None, (row_id, status)


def test_two_workers_never_finish_a_row_twice_nor_lose_one(make: Make, stage: Stage) -> None:
    """Any interleaving of two workers' claims, writes, crashes and lapses keeps every row once."""
    machine = type("Machine", (TwoWorkers,), {"make": staticmethod(make), "stage": stage})
    run_state_machine_as_test(
        machine, settings=settings(max_examples=25, stateful_step_count=25, deadline=None)
    )
