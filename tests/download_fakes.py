"""In-memory fakes of the ports the download job uses, for its unit tests (state, not calls)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import attrs

from tests.fakes import FakeClock, MemoryQueue
from undecat.domain.models import Product
from undecat.domain.stages import Stage
from undecat.errors import PhotoError
from undecat.ports import FetchedPhoto

NOW = datetime(2025, 1, 5, 10, 0, tzinfo=UTC)


def download_queue(
    products: Sequence[Product], *, max_attempts: int = 3, clock: FakeClock | None = None
) -> MemoryQueue:
    """The download stage's queue in memory, holding ``products`` as pending."""
    return MemoryQueue(Stage.DOWNLOAD, products, clock=clock, max_attempts=max_attempts)


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
