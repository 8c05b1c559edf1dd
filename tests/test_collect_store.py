"""PostgresCatalogStore on real PostgreSQL: change-aware upsert, delisting, undelisting."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import attrs
import pytest

from undecat.adapters.postgres import Database, PostgresCatalogStore
from undecat.domain.models import ProductDraft, UpsertResult
from undecat.errors import UndecatError

T0 = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
T1 = T0 + timedelta(days=7)

#: Every state column a re-collect must leave alone when nothing changed.
STATE_COLUMNS = (
    "image_status",
    "image_urls",
    "collage_url",
    "ximilar_status",
    "ximilar_synced_urls",
    "ximilar_record_ids",
    "sync_status",
    "error_message",
    "download_owner",
    "download_attempts",
    "collage_owner",
    "ximilar_owner",
    "sync_owner",
    "updated_at",
    "delisted_at",
)


def draft(external_id: str = "1", **changes: Any) -> ProductDraft:
    base = ProductDraft(
        source="apify_zara",
        external_id=external_id,
        brand="zara",
        name=f"Blazer {external_id}",
        description="Blazer with a notched lapel collar",
        price=Decimal("699.00"),
        currency="AED",
        category="woman-outerwear",
        colour="Black",
        sizes=("XS", "S", "M"),
        composition="OUTER SHELL: 100% polyester",
        original_image_urls=(f"https://static.zara.net/{external_id}-p.jpg?w=1920",),
        raw_data={"id": external_id},
    )
    return attrs.evolve(base, **changes)


def rows(db: Database) -> dict[str, dict[str, Any]]:
    with db.transaction("read") as cur:
        cur.execute("SELECT * FROM raw_products ORDER BY external_id")
        return {row["external_id"]: row for row in cur.fetchall()}


def advance(db: Database, external_id: str) -> None:
    """Move a product through the later stages, as the downloader, collage and sync would."""
    with db.transaction("advance") as cur:
        cur.execute(
            "UPDATE raw_products SET image_status = 'collage_ready',"
            " image_urls = '[\"https://cdn/x/0.jpg\"]', collage_url = 'https://cdn/c.jpg',"
            " ximilar_status = 'synced', ximilar_synced_urls = '[\"https://cdn/x/0.jpg\"]',"
            " ximilar_record_ids = '[\"r0\"]', sync_status = 'synced',"
            " download_attempts = 2, updated_at = '2026-03-02T00:00:00Z'"
            " WHERE external_id = %s",
            (external_id,),
        )


def state(row: dict[str, Any]) -> dict[str, Any]:
    return {column: row[column] for column in STATE_COLUMNS}


def test_new_products_are_inserted_pending(staging_db: Database) -> None:
    """New drafts are inserted with every field and image_status pending."""
    store = PostgresCatalogStore(staging_db)
    result = store.upsert_products([draft("1"), draft("2", price=None, description=None)], T0)
    assert result == UpsertResult(new=2)
    stored = rows(staging_db)
    one = stored["1"]
    assert one["image_status"] == "pending"
    assert one["sync_status"] == "pending"
    assert one["price"] == Decimal("699.00")
    assert one["sizes"] == ["XS", "S", "M"]
    assert one["original_image_urls"] == ["https://static.zara.net/1-p.jpg?w=1920"]
    assert one["composition"] == "OUTER SHELL: 100% polyester"
    assert one["raw_data"] == {"id": "1"}
    assert one["scraped_at"] == T0
    assert stored["2"]["price"] is None
    assert stored["2"]["description"] is None


def test_unchanged_recollect_moves_no_state(staging_db: Database) -> None:
    """Re-upserting identical drafts moves no status, lease, URL or updated_at; only scraped_at."""
    store = PostgresCatalogStore(staging_db)
    store.upsert_products([draft("1"), draft("2")], T0)
    advance(staging_db, "1")
    before = rows(staging_db)
    result = store.upsert_products([draft("1", raw_data={"id": "1", "seen": 2}), draft("2")], T1)
    after = rows(staging_db)
    assert result == UpsertResult(unchanged=2)
    for key in ("1", "2"):
        assert state(after[key]) == state(before[key])
        assert after[key]["scraped_at"] == T1
    assert after["1"]["raw_data"] == {"id": "1", "seen": 2}  # raw data is refreshed quietly


def test_changed_photos_reset_exactly_that_product(staging_db: Database) -> None:
    """New photo URLs send that product back to pending and clear its downstream state."""
    store = PostgresCatalogStore(staging_db)
    store.upsert_products([draft("1"), draft("2")], T0)
    advance(staging_db, "1")
    advance(staging_db, "2")
    before = rows(staging_db)
    new_photos = ("https://static.zara.net/1-e1.jpg?w=1920",)
    result = store.upsert_products([draft("1", original_image_urls=new_photos), draft("2")], T1)
    after = rows(staging_db)
    assert result == UpsertResult(updated=1, unchanged=1, photos_changed=1)
    one = after["1"]
    assert one["original_image_urls"] == list(new_photos)
    assert (one["image_status"], one["image_urls"], one["collage_url"]) == ("pending", None, None)
    assert (one["ximilar_status"], one["ximilar_synced_urls"]) == ("pending", [])
    assert one["ximilar_record_ids"] == ["r0"]  # kept, so the stale records can be deleted
    assert one["download_attempts"] == 0
    assert one["sync_status"] == "pending"
    assert one["updated_at"] > before["1"]["updated_at"]
    assert state(after["2"]) == state(before["2"])


def test_metadata_change_only_moves_sync_status(staging_db: Database) -> None:
    """A changed price, name, sizes, ... sends only sync_status back to pending."""
    store = PostgresCatalogStore(staging_db)
    store.upsert_products([draft("1"), draft("2"), draft("3")], T0)
    for key in ("1", "2", "3"):
        advance(staging_db, key)
    before = rows(staging_db)
    result = store.upsert_products(
        [
            draft("1", price=Decimal("599.00")),
            draft("2", sizes=("S", "M"), colour="Ecru", composition=None),
            draft("3", description="new text", category="woman-blazers", name="New"),
        ],
        T1,
    )
    after = rows(staging_db)
    assert result == UpsertResult(updated=3)
    assert after["1"]["price"] == Decimal("599.00")
    assert after["2"]["sizes"] == ["S", "M"]
    assert after["2"]["colour"] == "Ecru"
    assert after["3"]["description"] == "new text"
    for key in ("1", "2", "3"):
        assert after[key]["sync_status"] == "pending"
        assert after[key]["updated_at"] > before[key]["updated_at"]
        unchanged = {
            c: v for c, v in state(after[key]).items() if c not in ("sync_status", "updated_at")
        }
        assert unchanged == {
            c: v for c, v in state(before[key]).items() if c not in ("sync_status", "updated_at")
        }


def test_delist_missing_and_undelist_on_return(staging_db: Database) -> None:
    """Products not scraped since the stamp are delisted; one that comes back is undelisted."""
    store = PostgresCatalogStore(staging_db)
    store.upsert_products([draft("1"), draft("2"), draft("3")], T0)
    for key in ("1", "2", "3"):
        advance(staging_db, key)
    store.upsert_products([draft("1"), draft("2")], T1)
    assert store.delist_missing("apify_zara", T1) == 1
    assert store.count_active("apify_zara") == 2
    gone = rows(staging_db)["3"]
    assert gone["delisted_at"] is not None
    assert gone["sync_status"] == "pending"  # production must learn it is gone
    assert gone["image_status"] == "collage_ready"  # its photos stay valid
    assert store.delist_missing("apify_zara", T1) == 0  # already delisted: not again

    back = store.upsert_products([draft("3")], T1 + timedelta(days=7))
    returned = rows(staging_db)["3"]
    assert back == UpsertResult(updated=1)
    assert returned["delisted_at"] is None
    assert returned["image_status"] == "collage_ready"
    assert store.count_active("apify_zara") == 3


def test_delisting_is_per_source(staging_db: Database) -> None:
    """Delisting one brand's missing products leaves other brands alone."""
    store = PostgresCatalogStore(staging_db)
    store.upsert_products([draft("1"), draft("1", source="apify_oysho", brand="oysho")], T0)
    assert store.delist_missing("apify_zara", T1) == 1
    assert store.count_active("apify_oysho") == 1


def test_text_limits_and_unicode_are_stored_intact(staging_db: Database) -> None:
    """Arabic, emoji and 100-character colours round-trip; the largest price fits."""
    store = PostgresCatalogStore(staging_db)
    name = "فستان مطرز 👗✨"
    store.upsert_products(
        [draft("1", name=name, colour="x" * 100, price=Decimal("99999999.99"))], T0
    )
    row = rows(staging_db)["1"]
    assert row["name"] == name
    assert row["colour"] == "x" * 100
    assert row["price"] == Decimal("99999999.99")


def test_batches_of_all_null_columns_and_many_rows(staging_db: Database) -> None:
    """Batches larger than the statement size, with columns that are NULL throughout, go in."""
    store = PostgresCatalogStore(staging_db, batch_size=7)
    drafts = [
        draft(str(i), price=None, description=None, category=None, colour=None, composition=None)
        for i in range(30)
    ]
    assert store.upsert_products(drafts, T0) == UpsertResult(new=30)
    assert store.count_active("apify_zara") == 30


def test_duplicate_keys_in_one_call_are_refused(staging_db: Database) -> None:
    """The same (source, external_id) twice in one call is refused before anything is written."""
    store = PostgresCatalogStore(staging_db)
    with pytest.raises(UndecatError, match="appears twice"):
        store.upsert_products([draft("1"), draft("1")], T0)
    assert rows(staging_db) == {}


def test_apify_role_can_collect_and_delist(staging_db: Database) -> None:
    """The least-privilege apify role may upsert, refresh and delist (the trigger does the rest)."""
    PostgresCatalogStore(staging_db).upsert_products([draft("1"), draft("2")], T0)
    advance(staging_db, "1")
    as_apify = PostgresCatalogStore(_AsApify(staging_db))  # type: ignore[arg-type]
    as_apify.upsert_products(
        [draft("1", original_image_urls=("https://static.zara.net/n.jpg",)), draft("3")], T1
    )
    assert as_apify.delist_missing("apify_zara", T1) == 1
    assert as_apify.count_active("apify_zara") == 2
    after = rows(staging_db)
    assert after["1"]["image_status"] == "pending"
    assert after["1"]["collage_url"] is None
    assert after["2"]["delisted_at"] is not None


class _AsApify:
    """The test database, every transaction run as the apify role (SET LOCAL ROLE)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @contextmanager
    def transaction(self, what: str) -> Iterator[Any]:
        with self._db.transaction(what) as cur:
            cur.execute("SET LOCAL ROLE apify")
            yield cur


#: Columns that differ between two rows of the same draft only by when or in which order
#: they were written.
_WRITTEN = ("id", "created_at", "updated_at")


def _comparable(db: Database) -> dict[str, dict[str, Any]]:
    return {
        key: {c: v for c, v in row.items() if c not in _WRITTEN} for key, row in rows(db).items()
    }


def test_an_all_new_batch_copied_straight_in_equals_the_merge(
    staging_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bulk path for new products writes exactly the rows the merge would have written."""
    from undecat.adapters.postgres import catalog  # noqa: PLC0415

    drafts = [
        draft(str(n), sizes=("S",) * (n % 3), price=None if n % 4 else Decimal(n))
        for n in range(1, 41)
    ]
    store = PostgresCatalogStore(staging_db, batch_size=15)
    assert store.upsert_products(drafts, T0) == UpsertResult(new=40)
    copied = _comparable(staging_db)
    with staging_db.transaction("clear") as cur:
        cur.execute("DELETE FROM raw_products")
    # The same drafts through the merge only: the look-up reports every batch as existing.
    monkeypatch.setattr(catalog, "_EXISTING", "SELECT %(keys)s::jsonb")
    assert store.upsert_products(drafts, T0) == UpsertResult(new=40)
    assert _comparable(staging_db) == copied


def test_a_batch_with_one_known_product_is_merged_and_counted(staging_db: Database) -> None:
    """New and existing products in one batch: merged, each counted as what it is."""
    store = PostgresCatalogStore(staging_db)
    store.upsert_products([draft("1")], T0)
    result = store.upsert_products([draft("1"), draft("2"), draft("3")], T1)
    assert result == UpsertResult(new=2, unchanged=1)
    assert set(rows(staging_db)) == {"1", "2", "3"}


def test_a_product_inserted_between_look_up_and_copy_falls_back_to_the_merge(
    staging_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer's product refuses the bulk copy: rolled back whole, then merged."""
    from undecat.adapters.postgres import catalog  # noqa: PLC0415

    store = PostgresCatalogStore(staging_db)
    store.upsert_products([draft("2")], T0)  # the other writer's product
    advance(staging_db, "2")
    before = rows(staging_db)["2"]
    # The look-up misses it, as it would if it had been inserted just after.
    never = "SELECT 1 WHERE %(keys)s::jsonb IS NULL"
    monkeypatch.setattr(catalog, "_EXISTING", never)
    result = store.upsert_products([draft("1"), draft("2"), draft("3")], T1)
    assert result == UpsertResult(new=2, unchanged=1)
    after = rows(staging_db)
    assert set(after) == {"1", "2", "3"}  # nothing twice, nothing lost
    assert state(after["2"]) == state(before)  # the existing product's state is untouched
