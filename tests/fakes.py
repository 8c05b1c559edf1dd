"""In-memory fakes of our own ports, for unit tests of the jobs (assert on their state).

Real adapters are tested against real servers elsewhere; these follow the same contracts:
a lease lapses on the fake clock, results are written only by the lease's owner, a release
does not count the attempt, and ``requeue_failed`` takes failed rows with attempts left.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import attrs

from undecat.adapters.objectstore.keying import checked_content_type, checked_key, folder_prefix
from undecat.domain.models import Claim, Product
from undecat.domain.stages import CollageStored, Outcome, PhotosStored, Stage
from undecat.domain.status import ImageStatus, SyncStatus, XimilarStatus
from undecat.errors import ProductError


class FakeClock:
    """A thread-safe Clock whose ``sleep`` only moves time on (and is recorded)."""

    def __init__(self, start: float = 1000.0) -> None:
        self._lock = threading.Lock()
        self._t = start
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        with self._lock:
            return datetime(2025, 1, 5, 10, 0, tzinfo=UTC) + timedelta(seconds=self._t)

    def monotonic(self) -> float:
        with self._lock:
            return self._t

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self._t += max(seconds, 0.0)

    def advance(self, seconds: float) -> None:
        """Move time on without counting it as a sleep."""
        with self._lock:
            self._t += seconds


def product(n: int, urls: Sequence[str] | None = None, **changes: object) -> Product:
    """A pending product number ``n`` with ``urls`` as its photos (default: two).

    ``changes`` override any other field.
    """
    fields: dict[str, object] = {
        "id": n,
        "source": "apify_zara",
        "external_id": str(1000 + n),
        "brand": "zara",
        "name": f"P{n}",
        "category": None,
        "price": None,
        "original_image_urls": tuple(
            urls if urls is not None else (f"https://cdn/{n}/1.jpg", f"https://cdn/{n}/2.jpg")
        ),
        "image_urls": (),
        "collage_url": None,
        "image_status": ImageStatus.PENDING,
        "ximilar_status": XimilarStatus.PENDING,
        "sync_status": SyncStatus.PENDING,
        "index_scope": "off",
        "ximilar_synced_urls": (),
        "ximilar_target_count": 2,
    }
    fields.update(changes)
    return Product(**fields)  # type: ignore[arg-type]


@attrs.define
class Row:
    """One raw_products row as a claiming stage sees it.

    ``error`` is the stage's own reason (``<stage>_error``); ``token`` its claim counter.
    """

    product: Product
    status: ImageStatus
    owner: str | None = None
    lease_until: datetime | None = None
    attempts: int = 0
    image_urls: tuple[str, ...] = ()
    collage_url: str | None = None
    error_message: str | None = None
    error: str | None = None
    token: int = 0
    next_at: datetime | None = None


# stage -> (the status it works on, the status its outcome leads to, the status a failure
# leaves: the downloader's is image_status 'error'; a collage failure keeps 'uploaded')
_IMAGE_STAGES = {
    Stage.DOWNLOAD: (ImageStatus.PENDING, ImageStatus.UPLOADED, ImageStatus.ERROR),
    Stage.COLLAGE: (ImageStatus.UPLOADED, ImageStatus.COLLAGE_READY, ImageStatus.UPLOADED),
}
#: ``next_at`` of a row that waits for its data to change.
PARKED = datetime.max.replace(tzinfo=UTC)


class MemoryQueue:
    """The WorkQueue of the download or collage stage in memory.

    The same contract as PostgresWorkQueue (tests/test_queue_contract.py runs one suite
    against both): fenced by owner and token, failures kept in the stage's own ``error``,
    rows out of attempts end failed, ``requeue_failed`` takes failed rows with attempts left.
    ``fail_on[method] = exc`` makes that method raise (an outage; ``complete`` and ``fail``
    cover their ``_many`` forms). ``claimed_by``, ``released``, ``extended`` and
    ``settled_in`` record what the job did, for assertions.
    """

    def __init__(
        self,
        stage: Stage,
        products: Sequence[Product] = (),
        *,
        clock: FakeClock | None = None,
        max_attempts: int = 3,
    ) -> None:
        self.stage = stage
        self.ready, self.done, self.failed = _IMAGE_STAGES[stage]
        self.clock = clock or FakeClock()
        self.max_attempts = max_attempts
        self.rows: dict[int, Row] = {}
        self.lock = threading.Lock()
        self.fail_on: dict[str, Exception] = {}
        self.claimed_by: dict[int, list[str]] = {}
        self.released: list[int] = []
        self.extended: list[int] = []
        self.settled_in: list[int] = []  # the size of every complete_many / fail_many call
        for product in products:
            self.add(product)

    def add(self, product: Product) -> None:
        """Put a product in the queue's starting state."""
        self.rows[product.id] = Row(product, self.ready)

    def status(self, product_id: int) -> str:
        """The product's image status."""
        return self.rows[product_id].status

    def _maybe_fail(self, method: str) -> None:
        if method in self.fail_on:
            raise self.fail_on[method]

    def _free(self, row: Row) -> bool:
        return row.owner is None or (
            row.lease_until is not None and row.lease_until < self.clock.now()
        )

    def _held(self, claim: Claim) -> Row | None:
        row = self.rows[claim.product.id]
        return row if (row.owner, row.token) == (claim.owner, claim.token) else None

    def _set_error(self, row: Row, message: str) -> None:
        row.status, row.error, row.error_message = self.failed, message, message
        row.owner = row.lease_until = None

    def claim(self, owner: str, limit: int, lease: timedelta) -> list[Claim]:
        self._maybe_fail("claim")
        with self.lock:
            now = self.clock.now()
            for row in self.rows.values():
                eligible = row.status == self.ready and row.error is None and self._free(row)
                if eligible and row.attempts >= self.max_attempts:
                    self._set_error(
                        row, f"{self.stage.value}: gave up after {self.max_attempts} attempts"
                    )
            claims: list[Claim] = []
            for row in sorted(self.rows.values(), key=lambda r: r.product.id):
                if len(claims) == limit:
                    break
                if (
                    row.status == self.ready
                    and row.error is None
                    and self._free(row)
                    and (row.next_at is None or row.next_at <= now)
                    and row.attempts < self.max_attempts
                ):
                    row.owner, row.lease_until = owner, now + lease
                    row.attempts += 1
                    row.token += 1
                    self.claimed_by.setdefault(row.product.id, []).append(owner)
                    claims.append(
                        Claim(
                            self.stage.value,
                            owner,
                            row.attempts,
                            row.lease_until,
                            row.product,
                            token=row.token,
                        )
                    )
            return claims

    def extend(self, claims: Sequence[Claim], lease: timedelta) -> int:
        self._maybe_fail("extend")
        with self.lock:
            held = [(claim, row) for claim in claims if (row := self._held(claim))]
            for claim, row in held:
                row.lease_until = self.clock.now() + lease
                self.extended.append(claim.product.id)
            return len(held)

    def complete(self, claim: Claim, outcome: Outcome) -> bool:
        self._maybe_fail("complete")
        with self.lock:
            row = self._held(claim)
            if row is None:
                return False
            if isinstance(outcome, PhotosStored) and self.stage is Stage.DOWNLOAD:
                row.image_urls = outcome.image_urls
            elif isinstance(outcome, CollageStored) and self.stage is Stage.COLLAGE:
                row.collage_url = outcome.collage_url
            else:
                raise AssertionError(f"{type(outcome).__name__} is not a {self.stage} outcome")
            if row.error_message == row.error:
                row.error_message = None
            row.status, row.error, row.next_at = self.done, None, None
            row.owner = row.lease_until = None
            row.attempts = 0
            return True

    def fail(self, claim: Claim, message: str) -> bool:
        self._maybe_fail("fail")
        with self.lock:
            row = self._held(claim)
            if row is None:
                return False
            self._set_error(row, message)
            return True

    def complete_many(self, done: Sequence[tuple[Claim, Outcome]]) -> list[bool]:
        """``complete`` item by item, in order (``fail_on["complete"]`` fails the call)."""
        if not done:
            return []
        self._maybe_fail("complete")
        self.settled_in.append(len(done))
        return [self.complete(claim, outcome) for claim, outcome in done]

    def fail_many(self, failed: Sequence[tuple[Claim, str]]) -> list[bool]:
        """``fail`` item by item, in order (``fail_on["fail"]`` fails the call)."""
        if not failed:
            return []
        self._maybe_fail("fail")
        self.settled_in.append(len(failed))
        return [self.fail(claim, message) for claim, message in failed]

    def release(self, claims: Sequence[Claim]) -> int:
        self._maybe_fail("release")
        with self.lock:
            held = [(claim, row) for claim in claims if (row := self._held(claim))]
            for claim, row in held:
                row.owner = row.lease_until = None
                row.attempts = max(0, row.attempts - 1)
                self.released.append(claim.product.id)
            return len(held)

    def requeue_failed(self) -> int:
        with self.lock:
            requeued = 0
            for row in self.rows.values():
                if row.error is not None and row.owner is None and row.attempts < self.max_attempts:
                    self._clear_error(row)
                    requeued += 1
            return requeued

    def requeue(
        self, *, brand: str | None = None, reason: str | None = None, dry_run: bool = False
    ) -> int:
        """Put every failed row back with fresh attempts (``undecat requeue``)."""
        with self.lock:
            rows = [
                row
                for row in self.rows.values()
                if row.error is not None
                and self._free(row)
                and (brand is None or row.product.brand == brand)
                and (reason is None or reason.lower() in row.error.lower())
            ]
            if not dry_run:
                for row in rows:
                    self._clear_error(row)
                    row.attempts, row.next_at = 0, None
                    row.owner = row.lease_until = None
            return len(rows)

    def _clear_error(self, row: Row) -> None:
        if row.error_message == row.error:
            row.error_message = None
        row.status, row.error = self.ready, None


class MemoryStore:
    """The ObjectStore port in dicts; ``down = exc`` makes every call raise it (an outage)."""

    def __init__(self, base: str = "https://s3.test/bucket/") -> None:
        self.base = base
        self.objects: dict[str, bytes] = {}
        self.content_types: dict[str, str] = {}
        self.puts: list[str] = []
        self.lock = threading.Lock()
        self.down: Exception | None = None

    def _check(self) -> None:
        if self.down is not None:
            raise self.down

    def put(self, key: str, data: bytes, content_type: str) -> str:
        self._check()
        key, content_type = checked_key(key), checked_content_type(content_type)
        with self.lock:
            self.objects[key] = data
            self.content_types[key] = content_type
            self.puts.append(key)
        return self.public_url(key)

    def get(self, key: str) -> bytes:
        self._check()
        try:
            return self.objects[key]
        except KeyError:
            raise ProductError(f"no object at {key}") from None

    def exists(self, key: str) -> bool:
        self._check()
        return key in self.objects

    def delete_prefix(self, prefix: str) -> int:
        # A prefix is a folder: whole path segments only, as S3ObjectStore and
        # FileObjectStore (tests/test_objectstore_contract.py runs all three).
        self._check()
        folder = folder_prefix(prefix)
        gone = [k for k in self.objects if k.startswith(folder)]
        for key in gone:
            del self.objects[key]
        return len(gone)

    def delete(self, keys: Sequence[str]) -> int:
        self._check()
        with self.lock:
            gone = [key for key in keys if self.objects.pop(key, None) is not None]
            for key in keys:
                self.content_types.pop(key, None)
        return len(gone)

    def public_url(self, key: str) -> str:
        return self.base + key

    def key_for_url(self, url: str) -> str:
        if not url.startswith(self.base):
            raise ProductError(f"{url} is not a URL of this store")
        return url[len(self.base) :]
