"""A product whose photo list shrank leaves no photo of the old list public."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.fix_origin import Origin, Reply
from tests.fix_s3 import S3Bucket
from tests.photo_samples import rgb_jpeg
from tests.seed import draft
from tests.test_download_e2e import env, rows, run_job
from undecat.adapters.postgres import Database, PostgresCatalogStore
from undecat.domain.keys import original_key, originals_prefix

__all__ = ["env"]  # the fixture, shared with the end-to-end module


def _keys(bucket: S3Bucket, prefix: str) -> list[str]:
    listing = bucket.client.list_objects_v2(Bucket=bucket.bucket, Prefix=prefix)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def test_photos_beyond_a_shorter_new_list_are_deleted(
    env: dict[str, str], staging_dsn: str, staging_db: Database, origin: Origin, s3_bucket: S3Bucket
) -> None:
    """Five photos, then a re-collect with three: 4.jpg and 5.jpg are gone, 1-3 are the new ones."""
    for n in range(1, 6):
        origin.serve(f"/old/{n}.jpg", Reply(body=rgb_jpeg(colour=(n, 0, 0))))
        origin.serve(f"/new/{n}.jpg", Reply(body=rgb_jpeg(colour=(0, n, 0))))
    catalog = PostgresCatalogStore(staging_db)
    old = tuple(origin.url(f"/old/{n}.jpg") for n in range(1, 6))
    catalog.upsert_products(
        [draft(1, external_id="42", original_image_urls=old)], datetime.now(UTC)
    )
    assert run_job(env).records_new == 1
    prefix = originals_prefix("zara", "42")
    assert _keys(s3_bucket, prefix) == sorted(original_key("zara", "42", n) for n in range(1, 6))

    new = tuple(origin.url(f"/new/{n}.jpg") for n in range(1, 4))
    catalog.upsert_products(
        [draft(1, external_id="42", original_image_urls=new)], datetime.now(UTC)
    )
    result = run_job(env)
    assert (result.status, result.records_new) == ("success", 1)
    assert _keys(s3_bucket, prefix) == sorted(original_key("zara", "42", n) for n in range(1, 4))
    assert len(rows(staging_dsn)["42"]["image_urls"]) == 3
