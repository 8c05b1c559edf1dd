"""The collage host end to end on real services: staging PostgreSQL and SeaweedFS S3."""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from PIL import Image

from tests.fix_s3 import S3Bucket
from undecat.adapters.objectstore import open_object_store
from undecat.adapters.postgres import Database, PostgresWorkQueue
from undecat.bootstrap import bootstrap
from undecat.config import Config
from undecat.domain.keys import collage_key, original_key
from undecat.domain.models import Claim
from undecat.domain.stages import Outcome, Stage
from undecat.domain.status import RunStatus
from undecat.ports import ObjectStore
from undecat.settings import object_store_settings


def _photo(width: int, height: int, seed: int) -> bytes:
    image = Image.new("RGB", (width, height))
    image.putdata(
        [
            ((x * 7 + seed) % 256, (y * 5) % 256, seed % 256)
            for y in range(height)
            for x in range(width)
        ]
    )
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture
def config(staging_db: Database, staging_dsn: str, s3_bucket: S3Bucket, tmp_path: Path) -> Config:
    """A collage host configuration on this module's database and an empty bucket."""
    del staging_db  # requested for its truncation of the tables before each test
    return Config.from_env(
        {
            "STAGING_DB_URL": staging_dsn,
            "DATA_DIR": str(tmp_path),
            "BATCH_SIZE": "2",
            **s3_bucket.env(),
        }
    )


@pytest.fixture
def store(config: Config) -> Iterator[ObjectStore]:
    """The real S3 object store of the bucket."""
    opened = open_object_store(object_store_settings(config))
    try:
        yield opened
    finally:
        opened.close()


def _seed(dsn: str, store: ObjectStore, n: int, photos: list[bytes]) -> str:
    """Upload a product's originals and insert it as ``uploaded``; return its external id."""
    external_id = str(495_689_000 + n)
    urls = [
        store.put(original_key("zara", external_id, i), data, "image/jpeg")
        for i, data in enumerate(photos, 1)
    ]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO raw_products (source, external_id, brand, name, original_image_urls,"
            " image_urls, image_status, scraped_at)"
            " VALUES ('apify_zara', %s, 'zara', 'P', %s::jsonb, %s::jsonb, 'uploaded', %s)",
            (
                external_id,
                psycopg.types.json.Jsonb(
                    [f"https://static.zara.net/{external_id}/{i}.jpg" for i in range(len(photos))]
                ),
                psycopg.types.json.Jsonb(urls),
                datetime.now(UTC),
            ),
        )
    return external_id


def _rows(dsn: str) -> dict[str, dict[str, Any]]:
    with psycopg.connect(dsn, row_factory=psycopg.rows.dict_row) as conn:
        rows = conn.execute(
            "SELECT external_id, image_status, collage_url, error_message, collage_owner,"
            " collage_attempts, collage_error FROM raw_products"
        ).fetchall()
    return {row["external_id"]: row for row in rows}


def _collage_keys(bucket: S3Bucket) -> list[str]:
    listing = bucket.client.list_objects_v2(Bucket=bucket.bucket, Prefix="collages/")
    return sorted(item["Key"] for item in listing.get("Contents", []))


class CountingStore:
    """The real store, counting the collages written through it."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self.puts: list[tuple[str, bytes]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def put(self, key: str, data: bytes, content_type: str) -> str:
        self.puts.append((key, data))
        return self.store.put(key, data, content_type)


def test_process_new_builds_uploads_and_marks_ready_once(
    config: Config, staging_dsn: str, store: ObjectStore, s3_bucket: S3Bucket
) -> None:
    """Collages land in S3, rows go collage_ready, a broken photo fails its row; a rerun is free."""
    good = [
        _seed(staging_dsn, store, n, [_photo(24, 36, n), _photo(16, 24, n + 1)]) for n in range(3)
    ]
    whole = _photo(24, 36, 9)
    broken = _seed(staging_dsn, store, 9, [whole, whole[: len(whole) // 3]])
    counting = CountingStore(store)
    with bootstrap(config, object_store=counting) as jobs:
        result = jobs.job("collage", "process_new").run()
        again = jobs.job("collage", "process_new").run()
    assert result.status == RunStatus.PARTIAL
    assert (result.records_fetched, result.records_updated, result.records_errors) == (4, 3, 1)
    assert again.status == RunStatus.SUCCESS
    assert again.records_fetched == 0
    assert len(counting.puts) == 3  # the second run wrote nothing
    rows = _rows(staging_dsn)
    for external_id in good:
        key = collage_key("zara", external_id)
        assert rows[external_id]["image_status"] == "collage_ready"
        assert rows[external_id]["collage_url"] == store.public_url(key)
        assert rows[external_id]["collage_owner"] is None
        stored = s3_bucket.client.get_object(Bucket=s3_bucket.bucket, Key=key)
        assert stored["ContentType"] == "image/jpeg"
        assert Image.open(io.BytesIO(stored["Body"].read())).size == (48, 36)
    # The collage failure is the collage stage's own: the photos stay 'uploaded'.
    assert rows[broken]["image_status"] == "uploaded"
    assert "photo 2 of 2" in rows[broken]["collage_error"]
    assert rows[broken]["error_message"] == rows[broken]["collage_error"]
    assert _collage_keys(s3_bucket) == sorted(collage_key("zara", e) for e in good)
    with psycopg.connect(staging_dsn) as conn:
        logged = conn.execute(
            "SELECT status, records_updated, records_errors FROM scraper_logs"
            " WHERE scraper_name = 'process_new' ORDER BY id"
        ).fetchall()
    assert logged == [("partial", 3, 1), ("success", 0, 0)]


class Crash(BaseException):
    """The worker process dying at one exact point."""


class CrashBeforeComplete:
    """The real queue, except that the worker dies right before its first status update."""

    def __init__(self, queue: PostgresWorkQueue) -> None:
        self.queue = queue
        self.stage = queue.stage

    def __getattr__(self, name: str) -> Any:
        return getattr(self.queue, name)

    def complete_many(self, done: Sequence[tuple[Claim, Outcome]]) -> list[bool]:
        raise Crash


def test_crash_between_upload_and_status_update_leaves_one_collage(
    config: Config,
    staging_db: Database,
    staging_dsn: str,
    store: ObjectStore,
    s3_bucket: S3Bucket,
) -> None:
    """A worker dying after its upload: after the lease lapses a rerun completes it, same bytes."""
    external_id = _seed(staging_dsn, store, 1, [_photo(20, 30, 1), _photo(30, 20, 2)])
    key = collage_key("zara", external_id)
    first, second = CountingStore(store), CountingStore(store)
    dying = CrashBeforeComplete(PostgresWorkQueue(staging_db, Stage.COLLAGE))
    with bootstrap(config, object_store=first, queue_collage=dying) as jobs, pytest.raises(Crash):
        jobs.job("collage", "process_new").run()
    assert _rows(staging_dsn)[external_id]["image_status"] == "uploaded"
    assert _rows(staging_dsn)[external_id]["collage_owner"] is not None
    assert _collage_keys(s3_bucket) == [key]  # uploaded, not yet recorded
    # A second worker while the lease still runs finds nothing to take.
    with bootstrap(config, object_store=second) as jobs:
        assert jobs.job("collage", "process_new").run().records_fetched == 0
    with psycopg.connect(staging_dsn, autocommit=True) as conn:  # the dead worker's lease lapses
        conn.execute("UPDATE raw_products SET collage_lease_until = now() - interval '1 second'")
    with bootstrap(config, object_store=second) as jobs:
        result = jobs.job("collage", "process_new").run()
    assert (result.status, result.records_updated) == (RunStatus.SUCCESS, 1)
    row = _rows(staging_dsn)[external_id]
    assert (row["image_status"], row["collage_url"]) == ("collage_ready", store.public_url(key))
    assert _collage_keys(s3_bucket) == [key]
    assert [k for k, _ in first.puts] == [key]
    assert second.puts == first.puts  # the same bytes overwrote the same key
    body = s3_bucket.client.get_object(Bucket=s3_bucket.bucket, Key=key)["Body"].read()
    assert body == first.puts[0][1]


def test_object_store_down_fails_the_run_and_marks_nothing(
    config: Config, staging_dsn: str, store: ObjectStore, s3_down: str
) -> None:
    """With S3 unreachable the run is failed, every claim released, no product marked error."""
    ids = [_seed(staging_dsn, store, n, [_photo(10, 10, n)]) for n in range(3)]
    down = Config.from_env(
        {
            "STAGING_DB_URL": staging_dsn,
            "DATA_DIR": str(config.data_dir),
            "S3_ENDPOINT": s3_down,
            "S3_ACCESS_KEY": "k",
            "S3_SECRET_KEY": "s",
            "S3_BUCKET": config.s3_bucket,
            # Public URLs stay those of the photos' bucket; only the API endpoint is gone.
            "S3_PUBLIC_BASE_URL": config.public_base_url(),
        }
    )
    with bootstrap(down) as jobs:
        result = jobs.job("collage", "process_new").run()
    assert result.status == RunStatus.FAILED
    assert (result.error_message or "").startswith("ObjectStoreUnavailableError")
    rows = _rows(staging_dsn)
    for external_id in ids:
        assert rows[external_id]["image_status"] == "uploaded"
        assert rows[external_id]["error_message"] is None
        assert rows[external_id]["collage_owner"] is None
        assert rows[external_id]["collage_attempts"] == 0


def test_a_key_the_store_refuses_fails_that_product_only(
    config: Config, staging_dsn: str, store: ObjectStore, s3_bucket: S3Bucket
) -> None:
    """An id too long for an S3 key fails its own product; the rest of every batch is built."""
    good = [_seed(staging_dsn, store, n, [_photo(24, 36, n)]) for n in range(4)]
    # 90 four-byte characters (the column holds 100) escape to 1,080 key characters: past
    # S3's 1,024-byte limit for the collage key.
    long_id = "\U0001f600" * 90
    with psycopg.connect(staging_dsn, autocommit=True) as conn:
        url = conn.execute(
            "SELECT image_urls FROM raw_products WHERE external_id = %s", (good[0],)
        ).fetchone()
        assert url is not None
        conn.execute(
            "INSERT INTO raw_products (id, source, external_id, brand, name, original_image_urls,"
            " image_urls, image_status, scraped_at)"
            " VALUES (0, 'apify_zara', %s, 'zara', 'P', '[\"https://static.zara.net/x.jpg\"]',"
            " %s, 'uploaded', now())",
            (long_id, psycopg.types.json.Jsonb(url[0])),
        )
    with bootstrap(config) as jobs:
        result = jobs.job("collage", "process_new").run()
    assert result.status == RunStatus.PARTIAL
    assert (result.records_fetched, result.records_updated, result.records_errors) == (5, 4, 1)
    rows = _rows(staging_dsn)
    assert all(rows[e]["image_status"] == "collage_ready" for e in good)
    # A collage failure is the collage stage's own (0007): the photos stay uploaded.
    assert rows[long_id]["image_status"] == "uploaded"
    assert "unsafe object key" in rows[long_id]["collage_error"]
    assert "unsafe object key" in rows[long_id]["error_message"]
    assert all(row["collage_owner"] is None for row in rows.values())
    assert _collage_keys(s3_bucket) == sorted(collage_key("zara", e) for e in good)
