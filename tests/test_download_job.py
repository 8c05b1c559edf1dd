"""The download job over in-memory fakes of its ports: ordering, product errors, outages."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from tests.download_fakes import FakeFetcher, FakePreparer, download_queue
from tests.fakes import FakeClock, MemoryQueue, MemoryStore, product
from undecat.domain.status import ImageStatus, RunStatus
from undecat.errors import (
    DatabaseUnavailableError,
    ObjectStoreUnavailableError,
    PhotoError,
    ProxyError,
)
from undecat.jobs.download import DownloadSettings, PhotoDownloader
from undecat.jobs.maintenance import retry_failed


def downloader(
    queue: MemoryQueue,
    fetcher: FakeFetcher | None = None,
    store: MemoryStore | None = None,
    clock: FakeClock | None = None,
    **settings: object,
) -> PhotoDownloader:
    values: dict[str, object] = {
        "owner": "worker-1",
        "lease": timedelta(minutes=10),
        "batch_size": 4,
        "concurrency": 3,
    }
    values.update(settings)
    return PhotoDownloader(
        queue=queue,
        fetcher=fetcher or FakeFetcher(),
        preparer=FakePreparer(),
        store=store or MemoryStore(),
        clock=clock or FakeClock(),
        settings=DownloadSettings(**values),  # type: ignore[arg-type]
        secrets=("hunter2-secret",),
    )


def test_photos_are_stored_in_order_and_the_product_completed() -> None:
    """Each photo goes to originals/{brand}/{id}/{n}.jpg and the URLs are written in order."""
    urls = [f"https://cdn/p/{i}.jpg" for i in range(1, 4)]
    queue = download_queue([product(1, urls)])
    fetcher = FakeFetcher({u: u.encode() for u in urls})
    store = MemoryStore()
    result = downloader(queue, fetcher, store).download_pending()
    row = queue.rows[1]
    assert row.status == "uploaded"
    assert row.image_urls == tuple(
        f"https://s3.test/bucket/originals/zara/1001/{n}.jpg" for n in (1, 2, 3)
    )
    assert store.objects["originals/zara/1001/2.jpg"] == urls[1].encode()
    assert store.content_types["originals/zara/1001/2.jpg"] == "image/jpeg"
    assert (result.status, result.records_fetched, result.records_new) == ("success", 1, 1)
    assert result.metadata["photos_stored"] == 3


def test_at_most_five_photos_and_width_placeholder_filled() -> None:
    """Only the first five photos are fetched, with {width} replaced by 1920."""
    urls = [f"https://cdn/p/{i}_{{width}}.jpg" for i in range(1, 8)]
    queue = download_queue([product(1, urls)])
    fetcher = FakeFetcher()
    downloader(queue, fetcher).download_pending()
    assert fetcher.fetched == [f"https://cdn/p/{i}_1920.jpg" for i in range(1, 6)]
    assert len(queue.rows[1].image_urls) == 5


def test_a_bad_photo_fails_only_its_product() -> None:
    """A 404 photo marks its product error with a message naming the photo; others go on."""
    queue = download_queue([product(1), product(2), product(3)])
    bad = "https://cdn/2/2.jpg"
    fetcher = FakeFetcher({bad: PhotoError("HTTP 404 not found", url=bad)})
    result = downloader(queue, fetcher).download_pending()
    assert [queue.status(i) for i in (1, 2, 3)] == ["uploaded", "error", "uploaded"]
    assert queue.rows[2].error_message == (
        "download: photo 2 of 2 (https://cdn/2/2.jpg): HTTP 404 not found"
    )
    assert (result.status, result.records_new, result.records_errors) == ("partial", 2, 1)


def test_product_without_photos_is_an_error() -> None:
    """A product with no photo URL cannot be uploaded: it fails with a reason."""
    queue = download_queue([product(1, [])])
    downloader(queue).download_pending()
    assert queue.rows[1].status == "error"
    assert "no photo URLs" in (queue.rows[1].error_message or "")


def test_error_message_never_carries_a_secret() -> None:
    """A secret that found its way into an exception message is scrubbed before it is stored."""
    url = "https://cdn/1/1.jpg"
    queue = download_queue([product(1)])
    fetcher = FakeFetcher({url: PhotoError("proxy said hunter2-secret", url=url)})
    downloader(queue, fetcher).download_pending()
    message = queue.rows[1].error_message or ""
    assert "hunter2-secret" not in message
    assert "***" in message


@pytest.mark.parametrize(
    "outage",
    [
        ProxyError("the proxy refused our credentials (407)"),
        ObjectStoreUnavailableError("S3 unreachable"),
    ],
    ids=["proxy", "s3"],
)
def test_outage_stops_the_batch_and_releases_everything_unsettled(outage: Exception) -> None:
    """An outage marks nothing error, hands back every unfinished claim, and fails the run."""
    queue = download_queue([product(i) for i in range(1, 9)])
    fetcher = FakeFetcher()
    store = MemoryStore()
    if isinstance(outage, ProxyError):
        fetcher.answers["https://cdn/3/1.jpg"] = outage
    else:
        store.down = outage
    result = downloader(queue, fetcher, store, concurrency=1, batch_size=8).download_pending()
    statuses = [queue.status(i) for i in range(1, 9)]
    assert "error" not in statuses
    assert all(row.owner is None for row in queue.rows.values())
    done = statuses.count("uploaded")
    assert done == (2 if isinstance(outage, ProxyError) else 0)
    assert sorted(queue.released) == list(range(done + 1, 9))
    assert all(queue.rows[i].attempts == 0 for i in queue.released)
    assert result.status == RunStatus.FAILED
    assert type(outage).__name__ in (result.error_message or "")
    assert (result.records_new, result.records_errors) == (done, 0)


def test_product_errors_after_an_outage_are_released_not_failed() -> None:
    """Once a batch is stopping, a product error is not trusted: the product is handed back."""
    queue = download_queue([product(1), product(2)])
    gate = threading.Barrier(2, timeout=5)

    def outage_then() -> bytes:
        gate.wait()
        raise ProxyError("proxy gone")

    def cut_after_outage() -> bytes:
        gate.wait()
        threading.Event().wait(0.2)  # the outage is reported first
        raise PhotoError("connection cut mid-transfer")

    fetcher = FakeFetcher(
        {"https://cdn/1/1.jpg": outage_then, "https://cdn/2/1.jpg": cut_after_outage}
    )
    result = downloader(queue, fetcher, concurrency=2).download_pending()
    assert [queue.status(1), queue.status(2)] == ["pending", "pending"]
    assert sorted(queue.released) == [1, 2]
    assert result.status == RunStatus.FAILED


def test_database_gone_mid_batch_fails_the_run_and_leaves_leases_to_lapse() -> None:
    """When completing a product hits a dead database, the run fails and nothing is marked."""
    queue = download_queue([product(1), product(2)])
    queue.fail_on["complete"] = DatabaseUnavailableError("server closed the connection")
    queue.fail_on["release"] = DatabaseUnavailableError("server closed the connection")
    result = downloader(queue).download_pending()
    assert result.status == RunStatus.FAILED
    assert [queue.status(1), queue.status(2)] == ["pending", "pending"]
    assert "DatabaseUnavailableError" in (result.error_message or "")


def test_database_down_at_claim_fails_the_run() -> None:
    """A claim that cannot reach the database is a failed run, not an empty one."""
    queue = download_queue([product(1)])
    queue.fail_on["claim"] = DatabaseUnavailableError("connection refused")
    result = downloader(queue).download_pending()
    assert result.status == RunStatus.FAILED


def test_batches_repeat_until_nothing_is_pending() -> None:
    """Ten products with a batch size of four take three claims and all end uploaded."""
    queue = download_queue([product(i) for i in range(1, 11)])
    result = downloader(queue, batch_size=4).download_pending()
    assert all(queue.status(i) == "uploaded" for i in range(1, 11))
    assert result.metadata["batches"] == 3
    assert result.records_fetched == 10


def test_max_batches_bounds_a_run() -> None:
    """With max_batches the run stops after that many claims even if work is left."""
    queue = download_queue([product(i) for i in range(1, 11)])
    downloader(queue, batch_size=4, max_batches=1).download_pending()
    assert sum(queue.status(i) == "uploaded" for i in range(1, 11)) == 4


def test_products_are_downloaded_concurrently_up_to_the_limit() -> None:
    """Products of a batch are worked on in parallel, never more than the concurrency at once."""
    queue = download_queue([product(i, [f"https://cdn/{i}/1.jpg"]) for i in range(1, 13)])
    fetcher = FakeFetcher()
    fetcher.hold = 0.03
    downloader(queue, fetcher, batch_size=12, concurrency=4).download_pending()
    assert fetcher.max_in_flight == 4
    assert all(queue.status(i) == "uploaded" for i in range(1, 13))


def test_lost_lease_is_not_counted_as_new() -> None:
    """If another worker took the product over, the result is not written or counted."""
    queue = download_queue([product(1, ["https://cdn/1/1.jpg"])])

    def steal() -> bytes:
        queue.rows[1].owner = "someone-else"
        return b"JPEG"

    fetcher = FakeFetcher({"https://cdn/1/1.jpg": steal})
    result = downloader(queue, fetcher).download_pending()
    assert queue.status(1) == "pending"
    assert (result.records_new, result.metadata["lease_lost"]) == (0, 1)


def test_retry_failed_requeues_errors_with_attempts_left() -> None:
    """retry_failed sends error products back to pending and reports how many."""
    queue = download_queue([product(1), product(2)])
    queue.rows[1].status, queue.rows[1].attempts, queue.rows[1].error = ImageStatus.ERROR, 1, "x"
    queue.rows[2].status, queue.rows[2].attempts, queue.rows[2].error = ImageStatus.ERROR, 3, "x"
    result = retry_failed(queue)
    assert (queue.status(1), queue.status(2)) == ("pending", "error")
    assert result.records_updated == 1


def test_next_batch_starts_while_a_slow_product_of_the_last_one_is_in_flight() -> None:
    """Workers do not idle behind a batch's slowest product: the next batch is already claimed."""
    queue = download_queue([product(i, [f"https://cdn/{i}/1.jpg"]) for i in range(1, 5)])
    fourth_fetched = threading.Event()

    def slow() -> bytes:
        assert fourth_fetched.wait(5), "product 4 (second batch) never started"
        return b"JPEG"

    def fourth() -> bytes:
        fourth_fetched.set()
        return b"JPEG"

    fetcher = FakeFetcher({"https://cdn/1/1.jpg": slow, "https://cdn/4/1.jpg": fourth})
    result = downloader(queue, fetcher, batch_size=2, concurrency=2).download_pending()
    assert all(queue.status(i) == "uploaded" for i in range(1, 5))
    assert result.metadata["batches"] == 2


def test_lease_half_spent_while_waiting_is_renewed_before_the_product_starts() -> None:
    """A claim that waited behind others until half its lease was gone is extended first."""
    clock = FakeClock()
    queue = download_queue([product(1, ["https://cdn/1/1.jpg"]), product(2)], clock=clock)

    def slow() -> bytes:
        clock.sleep(20)  # product 1 takes long: product 2's claim waits
        return b"JPEG"

    fetcher = FakeFetcher({"https://cdn/1/1.jpg": slow})
    job = downloader(queue, fetcher, clock=clock, concurrency=1, lease=timedelta(seconds=30))
    job.download_pending()
    assert queue.extended == [2]
    assert queue.status(1) == queue.status(2) == "uploaded"


def test_fresh_lease_is_not_renewed() -> None:
    """A lease with more than half its time left costs no extra database call."""
    clock = FakeClock()
    queue = download_queue([product(1), product(2)], clock=clock)
    downloader(queue, clock=clock, lease=timedelta(seconds=30)).download_pending()
    assert queue.extended == []


def test_product_taken_over_before_it_started_is_not_fetched() -> None:
    """If the lease was lost while the claim waited, the product is left to its new owner."""
    clock = FakeClock()
    queue = download_queue(
        [product(1, ["https://cdn/1/1.jpg"]), product(2, ["https://cdn/2/1.jpg"])], clock=clock
    )

    def slow_then_stolen() -> bytes:
        clock.sleep(20)
        queue.rows[2].owner = "someone-else"  # product 2's lease lapsed and was taken over
        return b"JPEG"

    fetcher = FakeFetcher({"https://cdn/1/1.jpg": slow_then_stolen})
    job = downloader(queue, fetcher, clock=clock, concurrency=1, lease=timedelta(seconds=30))
    result = job.download_pending()
    assert fetcher.fetched == ["https://cdn/1/1.jpg"]
    assert queue.rows[2].owner == "someone-else"
    assert result.metadata["lease_lost"] == 1
    assert queue.released == []


def test_results_are_written_in_batches_of_settle_batch_and_the_rest_at_the_end() -> None:
    """Ten products, settle_batch 4, one worker: three writes of 4, 4 and the last 2."""
    queue = download_queue([product(n) for n in range(1, 11)])
    result = downloader(queue, concurrency=1, settle_batch=4).download_pending()
    assert queue.settled_in == [4, 4, 2]
    assert result.records_new == 10
    assert {queue.status(n) for n in range(1, 11)} == {"uploaded"}


def test_a_result_is_written_once_it_has_waited_settle_wait_while_others_still_work() -> None:
    """A finished product is not held back by a slow one: its result goes out after settle_wait."""
    queue = download_queue([product(1), product(2)])
    clock = FakeClock()
    seen = threading.Event()

    def slow() -> bytes:
        for _ in range(100):  # time passes until product 1 is written (5 s real at most)
            if queue.status(1) == "uploaded":
                seen.set()
                break
            clock.advance(1.0)
            threading.Event().wait(0.05)
        return b"JPEG"

    fetcher = FakeFetcher({"https://cdn/2/1.jpg": slow})
    result = downloader(
        queue, fetcher, clock=clock, concurrency=2, settle_batch=50, settle_wait=2.0
    ).download_pending()
    assert seen.is_set()
    assert result.records_new == 2


def test_a_claim_taken_over_while_its_result_waits_is_counted_lease_lost() -> None:
    """A buffered result whose lease another worker took meanwhile is not written: lease_lost."""
    queue = download_queue([product(1), product(2)])
    clock = queue.clock

    def take_over_product_1() -> bytes:
        clock.advance(timedelta(minutes=11).total_seconds())  # both leases lapse
        assert [c.product.id for c in queue.claim("other", 1, timedelta(minutes=10))] == [1]
        return b"JPEG"

    fetcher = FakeFetcher({"https://cdn/2/1.jpg": take_over_product_1})
    result = downloader(queue, fetcher, clock=clock, concurrency=1).download_pending()
    assert result.metadata["lease_lost"] == 1
    assert result.records_new == 1
    assert (queue.status(1), queue.rows[1].owner) == ("pending", "other")
    assert queue.status(2) == "uploaded"


def test_an_outage_writes_the_results_done_before_it_while_others_finish() -> None:
    """After an outage the buffered results are written at once, not after the slowest product."""
    queue = download_queue([product(1), product(2), product(3)])
    seen = threading.Event()

    def outage() -> bytes:
        threading.Event().wait(0.2)  # product 1 is done (and waiting to be written) first
        raise ProxyError("proxy gone")

    def slow() -> bytes:
        for _ in range(100):  # until product 1 is written (5 s at most)
            if queue.status(1) == "uploaded":
                seen.set()
                break
            threading.Event().wait(0.05)
        return b"JPEG"

    fetcher = FakeFetcher({"https://cdn/2/1.jpg": outage, "https://cdn/3/1.jpg": slow})
    result = downloader(queue, fetcher, concurrency=3, batch_size=3).download_pending()
    assert seen.is_set()
    assert result.status == RunStatus.FAILED
    assert [queue.status(1), queue.status(2)] == ["uploaded", "pending"]
    assert queue.released == [2]
