"""The collage jobs over in-memory fakes of the work queue and the object store."""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
from PIL import Image

from tests import fakes
from tests.fakes import FakeClock, MemoryQueue, MemoryStore
from undecat.adapters.imaging.collage import PillowCollageBuilder
from undecat.bootstrap import bootstrap
from undecat.config import Config
from undecat.domain.keys import collage_key, original_key
from undecat.domain.models import Claim, Product, RunLog, RunResult
from undecat.domain.stages import Outcome, Stage
from undecat.domain.status import ImageStatus, RunStatus
from undecat.errors import DatabaseUnavailableError, ObjectStoreUnavailableError
from undecat.jobs.collage import CollageStage
from undecat.jobs.maintenance import cleanup_temp, retry_failed
from undecat.jobs.runlog import StopToken

BASE = "https://images.test/unde-images/"
BUILD = PillowCollageBuilder(quality=95)


class DownAfter:
    """An object store that goes down after ``calls`` successful gets."""

    def __init__(self, store: MemoryStore, calls: int) -> None:
        self.store, self.calls = store, calls

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def get(self, key: str) -> bytes:
        if self.calls == 0:
            self.store.down = ObjectStoreUnavailableError("S3 endpoint refused the connection")
        self.calls -= 1
        return self.store.get(key)


def _jpeg(width: int, height: int, colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _product(n: int, urls: tuple[str, ...], brand: str = "zara") -> Product:
    return fakes.product(
        n,
        [f"https://static.zara.net/{n}/{i}.jpg" for i in range(len(urls))],
        source=f"apify_{brand}",
        external_id=str(495_000_000 + n),
        brand=brand,
        name=f"PRODUCT {n}",
        image_urls=urls,
        image_status=ImageStatus.UPLOADED,
        index_scope="pilot",
    )


#: A product handed back untouched: still uploaded, unowned, no attempt counted, no error.
_RELEASED = (ImageStatus.UPLOADED, None, 0, None)


def _settled_state(row: Any) -> tuple[object, ...]:
    return (row.status, row.owner, row.attempts, row.error_message)


def _stock(queue: MemoryQueue, store: MemoryStore, n: int, photos: Sequence[bytes]) -> Product:
    """Put a product's originals in the store and the product in the queue."""
    external_id = str(495_000_000 + n)
    urls = []
    for i, data in enumerate(photos, start=1):
        key = original_key("zara", external_id, i)
        store.objects[key] = data
        urls.append(store.public_url(key))
    product = _product(n, tuple(urls))
    queue.add(product)
    return product


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def queue(clock: FakeClock) -> MemoryQueue:
    return MemoryQueue(Stage.COLLAGE, clock=clock)


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore(BASE)


def _stage(queue: MemoryQueue, store: Any, clock: FakeClock, **changes: Any) -> CollageStage:
    fields: dict[str, Any] = {
        "queue": queue,
        "store": store,
        "build": BUILD,
        "clock": clock,
        "owner": "collage-test:1",
        "batch_size": 2,
        "lease": timedelta(hours=1),
    }
    fields.update(changes)
    return CollageStage(**fields)


PHOTOS = [_jpeg(30, 45, (200, 0, 0)), _jpeg(20, 30, (0, 200, 0)), _jpeg(30, 45, (0, 0, 200))]


def test_process_new_stores_each_collage_and_marks_it_ready(
    queue: MemoryQueue, store: MemoryStore, clock: FakeClock
) -> None:
    """Every uploaded product gets its collage at collages/{brand}/{id}.jpg and collage_ready."""
    products = [_stock(queue, store, n, PHOTOS[: n % 3 + 1]) for n in range(1, 6)]
    result = _stage(queue, store, clock).process_new()
    assert result.status == RunStatus.SUCCESS
    assert (result.records_fetched, result.records_updated, result.records_errors) == (5, 5, 0)
    for product in products:
        row = queue.rows[product.id]
        key = collage_key("zara", product.external_id)
        assert row.status is ImageStatus.COLLAGE_READY
        assert row.collage_url == BASE + key
        assert store.objects[key] == BUILD(
            [store.objects[store.key_for_url(u)] for u in product.image_urls]
        )


def test_running_twice_builds_each_collage_once(
    queue: MemoryQueue, store: MemoryStore, clock: FakeClock
) -> None:
    """A second run finds nothing to do: no collage is rebuilt or uploaded again."""
    for n in range(1, 4):
        _stock(queue, store, n, PHOTOS)
    _stage(queue, store, clock).process_new()
    again = _stage(queue, store, clock).process_new()
    assert again.status == RunStatus.SUCCESS
    assert again.records_fetched == 0
    assert sorted(store.puts) == sorted(set(store.puts))
    assert len(store.puts) == 3


def test_truncated_original_fails_only_that_product_with_the_photo_named(
    queue: MemoryQueue, store: MemoryStore, clock: FakeClock
) -> None:
    """A truncated photo marks its product error naming the photo; the others are built."""
    good = _stock(queue, store, 1, PHOTOS)
    bad = _stock(queue, store, 2, [PHOTOS[0], PHOTOS[1][: len(PHOTOS[1]) // 2]])
    result = _stage(queue, store, clock).process_new()
    assert result.status == RunStatus.PARTIAL
    assert (result.records_updated, result.records_errors) == (1, 1)
    assert queue.rows[good.id].status is ImageStatus.COLLAGE_READY
    row = queue.rows[bad.id]
    assert (row.status, row.error is not None) == (ImageStatus.UPLOADED, True)
    assert row.error_message is not None
    assert row.error_message.startswith("collage: photo 2 of 2 ")
    assert "truncated" in row.error_message.lower()
    assert row.error_message.endswith(f" [{bad.image_urls[1]}]")
    assert collage_key("zara", bad.external_id) not in store.objects


def test_missing_original_fails_the_product(
    queue: MemoryQueue, store: MemoryStore, clock: FakeClock
) -> None:
    """An original that is not in the store is the product's fault, with the key in the reason."""
    product = _stock(queue, store, 1, PHOTOS)
    del store.objects[store.key_for_url(product.image_urls[2])]
    result = _stage(queue, store, clock).process_new()
    row = queue.rows[product.id]
    assert result.status == RunStatus.PARTIAL
    assert (row.status, row.error is not None) == (ImageStatus.UPLOADED, True)
    assert row.error_message is not None
    assert row.error_message == (
        "collage: photo 3 of 3 cannot be read from the store:"
        f" no object at originals/zara/495000001/3.jpg [{product.image_urls[2]}]"
    )


def test_foreign_url_and_no_photos_fail_the_product(
    queue: MemoryQueue, store: MemoryStore, clock: FakeClock
) -> None:
    """A photo URL outside the store, or no photos at all, fails the product with a reason."""
    queue.add(_product(1, ("https://elsewhere.test/a.jpg",)))
    queue.add(_product(2, ()))
    _stage(queue, store, clock).process_new()
    assert queue.rows[1].error is not None  # the collage stage failed it
    assert "not a URL of this store" in (queue.rows[1].error_message or "")
    assert queue.rows[2].error is not None  # the collage stage failed it
    assert queue.rows[2].error_message == "collage: the product has no photos to put in a collage"


def test_too_large_collage_fails_the_product_clearly(
    queue: MemoryQueue, store: MemoryStore, clock: FakeClock
) -> None:
    """A collage over the pixel budget (2.4 GP here) is the product's fault, not a crash."""
    strip = io.BytesIO()
    Image.new("L", (100, 60_000), 0).save(strip, "PNG")
    product = _stock(queue, store, 1, [_jpeg(1920, 2880, (1, 1, 1)), strip.getvalue()])
    _stage(queue, store, clock).process_new()
    assert queue.rows[product.id].error is not None  # the collage stage failed it
    assert "over the budget of 200 MP" in (queue.rows[product.id].error_message or "")


def test_object_store_outage_releases_the_batch_and_marks_nothing(
    queue: MemoryQueue, store: MemoryStore, clock: FakeClock
) -> None:
    """S3 going down mid-batch: the run fails, the rest is released untouched, none is error."""
    products = [_stock(queue, store, n, PHOTOS) for n in range(1, 5)]
    flaky = DownAfter(store, calls=len(PHOTOS) + 1)  # product 1 read whole, product 2 half
    result = _stage(queue, flaky, clock, batch_size=10).process_new()
    assert result.status == RunStatus.FAILED
    assert result.error_message is not None
    assert result.error_message.startswith("ObjectStoreUnavailableError: ")
    assert result.records_errors == 0
    first, *rest = (queue.rows[p.id] for p in products)
    assert first.status is ImageStatus.COLLAGE_READY
    for row in rest:
        assert _settled_state(row) == _RELEASED


def test_outage_on_upload_releases_the_claim(
    queue: MemoryQueue, store: MemoryStore, clock: FakeClock
) -> None:
    """A failed upload is an outage too: the product stays uploaded, its attempt not counted."""
    product = _stock(queue, store, 1, PHOTOS)

    class UploadDown(DownAfter):
        def put(self, key: str, data: bytes, content_type: str) -> str:
            raise ObjectStoreUnavailableError("PUT timed out")

    result = _stage(queue, UploadDown(store, calls=99), clock).process_new()
    assert result.status == RunStatus.FAILED
    row = queue.rows[product.id]
    assert (row.status, row.owner, row.attempts) == (ImageStatus.UPLOADED, None, 0)


class Crash(BaseException):
    """The process dying (a kill, an OOM) at one exact point."""


class CrashOnFirstComplete:
    """A queue whose first completion never happens: the worker dies right after the upload."""

    def __init__(self, queue: MemoryQueue) -> None:
        self.queue, self.crashed = queue, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.queue, name)

    def complete_many(self, done: Sequence[tuple[Claim, Outcome]]) -> list[bool]:
        if not self.crashed:
            self.crashed = True
            raise Crash
        return self.queue.complete_many(done)


def test_crash_between_upload_and_status_update_is_recovered_once(
    queue: MemoryQueue, store: MemoryStore, clock: FakeClock
) -> None:
    """After a crash past the upload, the lapsed lease lets a rerun finish: one key, same bytes."""
    product = _stock(queue, store, 1, PHOTOS)
    key = collage_key("zara", product.external_id)
    with pytest.raises(Crash):
        _stage(CrashOnFirstComplete(queue), store, clock).process_new()  # type: ignore[arg-type]
    uploaded = store.objects[key]
    assert queue.rows[product.id].status is ImageStatus.UPLOADED  # stored, not marked ready
    assert queue.rows[product.id].owner is not None
    # While the dead worker's lease runs, nobody else touches the product.
    assert _stage(queue, store, clock, owner="other:2").process_new().records_fetched == 0
    clock.advance(timedelta(hours=1, seconds=1).total_seconds())
    result = _stage(queue, store, clock, owner="other:2").process_new()
    assert result.records_updated == 1
    row = queue.rows[product.id]
    assert row.status is ImageStatus.COLLAGE_READY
    assert row.collage_url == BASE + key
    assert store.puts == [key, key]  # the same key overwritten ...
    assert store.objects[key] == uploaded  # ... with the very same bytes
    assert [k for k in store.objects if k.startswith("collages/")] == [key]


def test_lease_lost_before_completion_is_counted_not_written(
    queue: MemoryQueue, store: MemoryStore, clock: FakeClock
) -> None:
    """A worker whose lease was taken over writes nothing and says so in the run metadata."""
    product = _stock(queue, store, 1, PHOTOS)

    def slow_build(photos: Sequence[bytes]) -> bytes:
        data = BUILD(photos)
        clock.advance(7200)  # the lease lapses while encoding ...
        queue.claim("thief:9", 10, timedelta(hours=1))  # ... and another worker takes it
        return data

    result = _stage(queue, store, clock, build=slow_build, batch_size=1).process_new()
    assert result.metadata["lease_lost"] == 1
    assert result.records_updated == 0
    assert queue.rows[product.id].owner == "thief:9"


def test_long_batches_renew_their_leases(
    queue: MemoryQueue, store: MemoryStore, clock: FakeClock
) -> None:
    """Leases of the rest of a batch are pushed out once half the lease has gone by."""
    products = [_stock(queue, store, n, PHOTOS[:1]) for n in range(1, 5)]

    stolen: list[Claim] = []

    def slow_build(photos: Sequence[bytes]) -> bytes:
        clock.advance(20 * 60)  # 20 minutes a collage, 80 for the batch, lease is 60
        stolen.extend(queue.claim("thief:9", 10, timedelta(hours=1)))
        return BUILD(photos)

    result = _stage(queue, store, clock, build=slow_build, batch_size=4).process_new()
    assert stolen == []  # no lease of the batch ever lapsed
    assert result.records_updated == 4
    assert result.metadata["lease_lost"] == 0
    assert all(queue.rows[p.id].status is ImageStatus.COLLAGE_READY for p in products)


def test_retry_failed_requeues_failed_products(
    queue: MemoryQueue, store: MemoryStore, clock: FakeClock
) -> None:
    """retry_failed gives failed products with attempts left back to the stage."""
    product = _stock(queue, store, 1, [b"not an image"])
    _stage(queue, store, clock).process_new()
    assert queue.rows[product.id].error is not None  # the collage stage failed it
    result = retry_failed(queue)
    assert (result.status, result.records_updated) == (RunStatus.SUCCESS, 1)
    assert (queue.rows[product.id].status, queue.rows[product.id].error) == (
        ImageStatus.UPLOADED,
        None,
    )


def _touch(path: Path, age: timedelta, now: datetime) -> None:
    stamp = (now - age).timestamp()
    os.utime(path, (stamp, stamp), follow_symlinks=False)


def test_cleanup_temp_removes_only_old_scratch_files(tmp_path: Path, clock: FakeClock) -> None:
    """Old files in DATA_DIR/tmp go; fresh ones, the object store and link targets stay."""
    now = clock.now()
    scratch = tmp_path / "tmp"
    (scratch / "old-folder").mkdir(parents=True)
    old = scratch / "old-folder" / "partial.jpg"
    old.write_bytes(b"x")
    fresh = scratch / "fresh.jpg"
    fresh.write_bytes(b"y")
    objects = tmp_path / "objects" / "unde-images"
    objects.mkdir(parents=True)
    stored = objects / "collage.jpg"
    stored.write_bytes(b"z")
    link = scratch / "link"
    link.symlink_to(objects, target_is_directory=True)
    for path in (old, scratch / "old-folder", stored, link):
        _touch(path, timedelta(days=3), now)
    _touch(fresh, timedelta(hours=2), now)
    result = cleanup_temp(tmp_path, clock, host="collage")
    assert result.status == RunStatus.SUCCESS
    assert result.metadata["removed"] == 3  # the old file, its emptied folder, the link
    assert not old.exists()
    assert not (scratch / "old-folder").exists()
    assert not link.is_symlink()
    assert fresh.exists()
    assert stored.exists()


def test_cleanup_temp_without_a_scratch_folder_is_a_no_op(tmp_path: Path, clock: FakeClock) -> None:
    """A data folder without tmp/ is fine: nothing removed, success."""
    result = cleanup_temp(tmp_path / "absent", clock, host="collage")
    assert (result.status, result.metadata["removed"]) == (RunStatus.SUCCESS, 0)


class MemoryRecorder:
    """The RunRecorder port in memory."""

    def __init__(self) -> None:
        self.finished: list[tuple[str, RunResult]] = []

    def start(self, scraper_name: str, metadata: dict[str, Any] | None = None) -> Any:
        return attrs.make_class(
            "Running", {"id": attrs.field(), "started_at": attrs.field(), "name": attrs.field()}
        )(len(self.finished) + 1, datetime.now(UTC), scraper_name)

    def finish(self, run: Any, result: RunResult) -> None:
        self.finished.append((run.name, result))

    def recent(self, scraper_name: str | None = None, limit: int = 20) -> list[RunLog]:
        return []


def test_bootstrap_wires_the_collage_host(
    queue: MemoryQueue, store: MemoryStore, clock: FakeClock, tmp_path: Path
) -> None:
    """The runner's three jobs run through bootstrap, logged under the document's names."""
    product = _stock(queue, store, 1, PHOTOS)
    recorder = MemoryRecorder()
    config = Config.from_env({"DATA_DIR": str(tmp_path), "COLLAGE_QUALITY": "90"})
    with bootstrap(
        config, queue_collage=queue, object_store=store, recorder=recorder, clock=clock
    ) as jobs:
        for name in ("process_new", "retry_failed", "cleanup_temp"):
            assert jobs.job("collage", name).run().status == RunStatus.SUCCESS
    assert [name for name, _ in recorder.finished] == [
        "process_new",
        "collage.retry_failed",
        "collage.cleanup_temp",
    ]
    key = collage_key("zara", product.external_id)
    collage = Image.open(io.BytesIO(store.objects[key]))
    assert collage.format == "JPEG"
    assert queue.rows[product.id].status is ImageStatus.COLLAGE_READY
    # COLLAGE_QUALITY reaches the builder: the tables are those of quality 90.
    reference = io.BytesIO()
    Image.new("RGB", (8, 8)).save(reference, "JPEG", quality=90, subsampling=0)
    assert collage.quantization == Image.open(reference).quantization  # type: ignore[attr-defined]


class Rendezvous:
    """A builder that proves two collages are built at once: each waits for the other."""

    def __init__(self) -> None:
        self.barrier = threading.Barrier(2, timeout=10)
        self.met = 0
        self.lock = threading.Lock()

    def __call__(self, photos: Sequence[bytes]) -> bytes:
        try:
            self.barrier.wait()
        except threading.BrokenBarrierError:
            pass  # the last, odd product of a batch has no partner
        else:
            with self.lock:
                self.met += 1
        return BUILD(photos)


def test_two_workers_build_two_collages_at_once_with_the_same_bytes(
    queue: MemoryQueue, store: MemoryStore, clock: FakeClock
) -> None:
    """COLLAGE_WORKERS=2: products are built in pairs, every one stored as one worker would."""
    products = [_stock(queue, store, n, PHOTOS[: n % 3 + 1]) for n in range(1, 7)]
    build = Rendezvous()
    result = _stage(queue, store, clock, build=build, batch_size=4, workers=2).process_new()
    assert result.status == RunStatus.SUCCESS
    assert (result.records_fetched, result.records_updated) == (6, 6)
    assert build.met >= 4  # at least two pairs met at the barrier: two builds at once
    for product in products:
        key = collage_key("zara", product.external_id)
        assert queue.rows[product.id].status is ImageStatus.COLLAGE_READY
        assert store.objects[key] == BUILD(
            [store.objects[store.key_for_url(u)] for u in product.image_urls]
        )


def test_two_workers_outage_loses_nothing(
    queue: MemoryQueue, store: MemoryStore, clock: FakeClock
) -> None:
    """S3 down mid-batch with two workers: each product is either ready or handed back whole."""
    products = [_stock(queue, store, n, PHOTOS) for n in range(1, 9)]
    flaky = DownAfter(store, calls=3 * len(PHOTOS) + 1)
    result = _stage(queue, flaky, clock, batch_size=8, workers=2).process_new()
    assert result.status == RunStatus.FAILED
    assert result.records_errors == 0
    ready = [p for p in products if queue.rows[p.id].status is ImageStatus.COLLAGE_READY]
    assert 1 <= len(ready) <= 3
    assert result.records_updated == len(ready)
    for product in products:
        row = queue.rows[product.id]
        if row.status is ImageStatus.COLLAGE_READY:
            assert store.objects[collage_key("zara", product.external_id)]
            continue
        assert _settled_state(row) == _RELEASED


def test_two_workers_stop_finishes_the_collages_in_hand_and_releases_the_rest(
    queue: MemoryQueue, store: MemoryStore, clock: FakeClock
) -> None:
    """SIGTERM with two workers: at most the two products in hand finish, the rest go back."""
    products = [_stock(queue, store, n, PHOTOS[:1]) for n in range(1, 7)]
    stop = StopToken()

    def build(photos: Sequence[bytes]) -> bytes:
        stop.request("SIGTERM")
        return BUILD(photos)

    result = _stage(
        queue, store, clock, build=build, batch_size=6, workers=2, stop=stop
    ).process_new()
    done = [p for p in products if queue.rows[p.id].status is ImageStatus.COLLAGE_READY]
    assert 1 <= len(done) <= 2
    assert result.records_updated == len(done)
    for product in products:
        row = queue.rows[product.id]
        if row.status is not ImageStatus.COLLAGE_READY:
            assert (row.status, row.owner, row.attempts) == (ImageStatus.UPLOADED, None, 0)


def test_collage_workers_reach_the_stage(
    queue: MemoryQueue, store: MemoryStore, clock: FakeClock, tmp_path: Path
) -> None:
    """COLLAGE_WORKERS is read (default 2, the document's concurrency) and wired."""
    assert Config.from_env({"DATA_DIR": str(tmp_path)}).collage_workers == 2
    config = Config.from_env({"DATA_DIR": str(tmp_path), "COLLAGE_WORKERS": "3"})
    with bootstrap(
        config, queue_collage=queue, object_store=store, recorder=MemoryRecorder(), clock=clock
    ) as jobs:
        work = jobs.job("collage", "process_new").work
        assert isinstance(work.__self__, CollageStage)  # type: ignore[attr-defined]
        assert work.__self__.workers == 3  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="'workers' must be >= 1"):
        CollageStage(queue, store, BUILD, clock, "o", workers=0)


def test_a_batch_s_results_are_written_a_few_calls_at_a_time(
    queue: MemoryQueue, store: MemoryStore, clock: FakeClock
) -> None:
    """Seven products, batch 5, settle_batch 2, one worker: writes of 2, 2, 1 then 2."""
    products = [_stock(queue, store, n, PHOTOS[:1]) for n in range(1, 8)]
    result = _stage(queue, store, clock, batch_size=5, settle_batch=2).process_new()
    assert queue.settled_in == [2, 2, 1, 2]  # the end of a batch writes what waits
    assert result.records_updated == 7
    assert {queue.status(p.id) for p in products} == {ImageStatus.COLLAGE_READY}


def test_a_database_outage_while_writing_results_marks_nothing_and_hands_the_batch_back(
    queue: MemoryQueue, store: MemoryStore, clock: FakeClock
) -> None:
    """Collages stored but their completions refused: the run fails, every claim is released."""
    products = [_stock(queue, store, n, PHOTOS[:1]) for n in range(1, 4)]
    queue.fail_on["complete"] = DatabaseUnavailableError("server closed the connection")
    result = _stage(queue, store, clock, batch_size=3).process_new()
    assert result.status == RunStatus.FAILED
    assert {queue.status(p.id) for p in products} == {ImageStatus.UPLOADED}
    assert sorted(queue.released) == [p.id for p in products]
    assert all(queue.rows[p.id].owner is None for p in products)
