"""In-memory fakes of the ports the download job uses, for its unit tests (state, not calls)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import attrs

from undecat.domain.models import Claim, Product
from undecat.domain.stages import Outcome, PhotosStored, Stage
from undecat.domain.status import ImageStatus, SyncStatus, XimilarStatus
from undecat.errors import PhotoError, ProductError
from undecat.ports import Clock, FetchedPhoto

NOW = datetime(2025, 1, 5, 10, 0, tzinfo=UTC)


def product(n: int, urls: Sequence[str] | None = None, **changes: object) -> Product:
    """A pending product number ``n`` with ``urls`` as its photos (default: two)."""
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
    """The queue's view of one product."""

    product: Product
    status: str = "pending"
    owner: str | None = None
    attempts: int = 0
    image_urls: tuple[str, ...] = ()
    error_message: str | None = None


class FakeQueue:
    """A download WorkQueue in memory; ``fail_on`` makes a method raise (an outage)."""

    stage = Stage.DOWNLOAD

    def __init__(
        self, products: Sequence[Product], *, max_attempts: int = 3, clock: Clock | None = None
    ) -> None:
        self.clock = clock
        self.rows = {p.id: Row(p) for p in products}
        self.max_attempts = max_attempts
        self.lock = threading.Lock()
        self.fail_on: dict[str, Exception] = {}
        self.claimed_by: dict[int, list[str]] = {}
        self.released: list[int] = []
        self.extended: list[int] = []

    def _maybe_fail(self, method: str) -> None:
        if method in self.fail_on:
            raise self.fail_on[method]

    def claim(self, owner: str, limit: int, lease: timedelta) -> list[Claim]:
        self._maybe_fail("claim")
        with self.lock:
            free = [r for r in self.rows.values() if r.status == "pending" and r.owner is None]
            chosen = sorted(free, key=lambda r: r.product.id)[:limit]
            for row in chosen:
                row.owner = owner
                row.attempts += 1
                self.claimed_by.setdefault(row.product.id, []).append(owner)
            now = self.clock.now() if self.clock is not None else NOW
            return [Claim("download", owner, r.attempts, now + lease, r.product) for r in chosen]

    def extend(self, claims: Sequence[Claim], lease: timedelta) -> int:
        self._maybe_fail("extend")
        with self.lock:
            held = [c for c in claims if self.rows[c.product.id].owner == c.owner]
            self.extended.extend(c.product.id for c in held)
            return len(held)

    def complete(self, claim: Claim, outcome: Outcome) -> bool:
        self._maybe_fail("complete")
        assert isinstance(outcome, PhotosStored)
        with self.lock:
            row = self.rows[claim.product.id]
            if row.owner != claim.owner:
                return False
            row.status, row.owner, row.attempts = "uploaded", None, 0
            row.image_urls = outcome.image_urls
            return True

    def fail(self, claim: Claim, message: str) -> bool:
        self._maybe_fail("fail")
        with self.lock:
            row = self.rows[claim.product.id]
            if row.owner != claim.owner:
                return False
            row.status, row.owner, row.error_message = "error", None, message
            return True

    def postpone(self, claim: Claim, message: str, delay: timedelta) -> bool:
        raise AssertionError("the download job does not postpone")

    def release(self, claims: Sequence[Claim]) -> int:
        self._maybe_fail("release")
        with self.lock:
            count = 0
            for claim in claims:
                row = self.rows[claim.product.id]
                if row.owner == claim.owner:
                    row.owner = None
                    row.attempts = max(0, row.attempts - 1)
                    self.released.append(row.product.id)
                    count += 1
            return count

    def requeue_failed(self) -> int:
        with self.lock:
            count = 0
            for row in self.rows.values():
                if row.status == "error" and row.attempts < self.max_attempts:
                    row.status = "pending"
                    count += 1
            return count

    def status(self, product_id: int) -> str:
        return self.rows[product_id].status


@attrs.frozen
class FakePhoto:
    url: str
    content: bytes
    content_type: str | None = "image/jpeg"


Answer = bytes | Exception | Callable[[], bytes]


class FakeFetcher:
    """Answers each URL with bytes, an exception, or a callable (to block or count)."""

    def __init__(
        self, answers: dict[str, Answer] | None = None, *, default: bytes = b"JPEG"
    ) -> None:
        self.answers = answers or {}
        self.default = default
        self.lock = threading.Lock()
        self.fetched: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.hold = 0.0  # seconds each fetch takes (real time, for concurrency tests)

    def fetch(self, url: str, *, deadline: float) -> FakePhoto:
        with self.lock:
            self.fetched.append(url)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.hold:
                time.sleep(self.hold)
            answer = self.answers.get(url, self.default)
            if isinstance(answer, Exception):
                raise answer
            if callable(answer):
                answer = answer()
            return FakePhoto(url, answer)
        finally:
            with self.lock:
                self.in_flight -= 1


@attrs.frozen
class Prepared:
    content: bytes
    content_type: str


class FakePreparer:
    """Refuses bodies starting with ``<`` (an HTML page); passes everything else as JPEG."""

    def prepare(self, photo: FetchedPhoto) -> Prepared:
        if photo.content.startswith(b"<"):
            raise PhotoError("not an image: HTML page", url=photo.url)
        return Prepared(photo.content, "image/jpeg")


class FakeStore:
    """An ObjectStore in a dict; ``down`` makes every put an outage."""

    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, str]] = {}
        self.lock = threading.Lock()
        self.down: Exception | None = None

    def put(self, key: str, data: bytes, content_type: str) -> str:
        if self.down is not None:
            raise self.down
        with self.lock:
            self.objects[key] = (data, content_type)
        return self.public_url(key)

    def get(self, key: str) -> bytes:
        try:
            return self.objects[key][0]
        except KeyError:
            raise ProductError(f"no object {key}") from None

    def exists(self, key: str) -> bool:
        return key in self.objects

    def delete_prefix(self, prefix: str) -> int:
        gone = [k for k in self.objects if k.startswith(prefix)]
        for key in gone:
            del self.objects[key]
        return len(gone)

    def public_url(self, key: str) -> str:
        return f"https://s3.test/bucket/{key}"

    def key_for_url(self, url: str) -> str:
        return url.removeprefix("https://s3.test/bucket/")
