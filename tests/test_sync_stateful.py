"""Sync idempotency as a Hypothesis state machine over real staging and production databases.

Any interleaving of collect changes, photo and collage completions, Ximilar completions,
delistings, sync runs and crashed sync workers (production written, staging not marked,
lease lapsed) leaves every synced staging row mirrored exactly in ``catalog.products``
after a sync run, and a sync run right after another writes nothing.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule, run_state_machine_as_test
from psycopg.rows import dict_row

from tests.fakes import FakeClock
from tests.seed import seed_rows
from undecat.adapters.postgres import Database, PostgresWorkQueue
from undecat.adapters.postgres.availability import PostgresSyncSource
from undecat.adapters.postgres.production import PostgresProductionCatalog
from undecat.domain.production import Verdict, verify
from undecat.domain.stages import Stage
from undecat.jobs.sync import ProductionSync
from undecat.redact import Secret

PRODUCTS = 4
LEASE = timedelta(minutes=5)
MIRRORED = (
    "source, name, description, price, currency, category, colour, sizes, composition,"
    " image_urls, collage_url, ximilar_record_ids, index_scope"
)


def q(dsn: str, query: str, params: Any = None) -> list[dict[str, Any]]:
    """Run a query as the superuser."""
    with psycopg.connect(dsn, row_factory=dict_row, autocommit=True) as conn:
        cur = conn.execute(query, params)  # test queries
        return cur.fetchall() if cur.description else []


class SyncMachine(RuleBasedStateMachine):
    """Staging changes, sync runs and crashes in any order."""

    def __init__(self, staging_dsn: str, production_dsn: str) -> None:
        super().__init__()
        self.staging, self.production = staging_dsn, production_dsn
        q(staging_dsn, "TRUNCATE raw_products, raw_availability, raw_stores RESTART IDENTITY")
        q(production_dsn, "TRUNCATE catalog.products, catalog.stores, catalog.availability")
        seed_rows(staging_dsn, 1)
        seed_rows(
            staging_dsn,
            PRODUCTS - 1,
            start=1,
            image_status="collage_ready",
            collage_url="http://s3.local/c/0.jpg",
        )
        self.sdb = Database(Secret(staging_dsn), max_size=2)
        self.pdb = Database(Secret(production_dsn), name="production", max_size=2)
        self.queue = PostgresWorkQueue(self.sdb, Stage.SYNC, max_attempts=10_000)
        self.source = PostgresSyncSource(self.sdb)
        self.catalog = PostgresProductionCatalog(self.pdb, chunk=4)
        self.version = 0

    def teardown(self) -> None:
        """Close the pools."""
        self.sdb.close()
        self.pdb.close()

    def _where(self, n: int) -> str:
        return str(500_000_000 + n)

    def _job(self) -> ProductionSync:
        return ProductionSync(
            queue=self.queue,
            source=self.source,
            production=self.catalog,
            clock=FakeClock(),
            owner="worker",
            batch_size=3,
            lease=LEASE,
        )

    @rule(n=st.integers(0, PRODUCTS - 1), price=st.sampled_from([None, "0", "19.90", "25.00"]))
    def collect_changes_price(self, n: int, price: str | None) -> None:
        """Collect brings a new price (maybe none, maybe zero)."""
        q(
            self.staging,
            "UPDATE raw_products SET price = %s WHERE external_id = %s",
            (price, self._where(n)),
        )

    @rule(n=st.integers(0, PRODUCTS - 1))
    def collect_changes_name(self, n: int) -> None:
        """Collect brings a new name."""
        self.version += 1
        q(
            self.staging,
            "UPDATE raw_products SET name = %s WHERE external_id = %s",
            (f"NAME {self.version}", self._where(n)),
        )

    @rule(n=st.integers(0, PRODUCTS - 1))
    def collect_changes_photos(self, n: int) -> None:
        """Collect brings new photo URLs (photos and collage start over)."""
        self.version += 1
        q(
            self.staging,
            "UPDATE raw_products SET original_image_urls = %s WHERE external_id = %s",
            (f'["https://static.zara.net/{self.version}.jpg"]', self._where(n)),
        )

    @rule(n=st.integers(0, PRODUCTS - 1), ok=st.booleans())
    def photos_and_collage_finish(self, n: int, ok: bool) -> None:
        """The downloader and collage builder finish (or fail) a product in progress."""
        self.version += 1
        if ok:
            q(
                self.staging,
                "UPDATE raw_products SET image_status = 'collage_ready', collage_url = %s"
                " WHERE external_id = %s AND image_status IN ('pending', 'uploaded', 'error')",
                (f"http://s3.local/c/{self.version}.jpg", self._where(n)),
            )
        else:
            q(
                self.staging,
                "UPDATE raw_products SET image_status = 'error'"
                " WHERE external_id = %s AND image_status IN ('pending', 'uploaded')",
                (self._where(n),),
            )

    @rule(n=st.integers(0, PRODUCTS - 1))
    def ximilar_records_change(self, n: int) -> None:
        """The Ximilar sync records the product's record ids."""
        self.version += 1
        q(
            self.staging,
            "UPDATE raw_products SET ximilar_record_ids = %s WHERE external_id = %s",
            (f'["r{self.version}"]', self._where(n)),
        )

    @rule(n=st.integers(0, PRODUCTS - 1), gone=st.booleans())
    def delisting(self, n: int, gone: bool) -> None:
        """A complete collection delists the product, or lists it again."""
        value = "now()" if gone else "NULL"
        q(
            self.staging,
            f"UPDATE raw_products SET delisted_at = {value} WHERE external_id = %s",
            (self._where(n),),
        )

    @rule(k=st.integers(1, PRODUCTS), written=st.integers(0, PRODUCTS))
    def a_worker_crashes(self, k: int, written: int) -> None:
        """A worker claims, writes some ready rows to production, dies; its leases lapse."""
        claims = self.queue.claim("crashed", k, LEASE)
        entries = self.source.entries([c.product.id for c in claims])
        ready = [e for e in entries if verify(e).verdict is Verdict.READY][:written]
        self.catalog.upsert_products(ready)
        q(
            self.staging,
            "UPDATE raw_products SET sync_lease_until = now() - interval '1 second'"
            " WHERE sync_owner = 'crashed'",
        )

    @rule()
    def sync_runs_twice(self) -> None:
        """A sync run mirrors every synced row; the run right after writes nothing."""
        first = self._job().run()
        assert first.status == "success", first.error_message
        self._check_mirror()
        second = self._job().run()
        assert second.metadata["products_changed"] == 0
        assert second.metadata["deactivated"] == 0

    def _check_mirror(self) -> None:
        synced = q(
            self.staging,
            f"SELECT brand, external_id, {MIRRORED}, delisted_at IS NULL AS active"
            " FROM raw_products WHERE sync_status = 'synced'",
        )
        held = {
            (r["brand"], r["external_id"]): r
            for r in q(
                self.production,
                f"SELECT brand, external_id, {MIRRORED}, is_active FROM catalog.products",
            )
        }
        for row in synced:
            mine = held.get((row["brand"], row["external_id"]))
            if not row.pop("active"):
                assert mine is None or mine["is_active"] is False, row
                continue
            assert mine is not None, row
            assert mine.pop("is_active") is True
            row["sizes"] = row["sizes"] or []
            row["image_urls"] = row["image_urls"] or []
            assert mine == row


def test_sync_is_idempotent_under_any_interleaving(
    staging_db: Database, staging_dsn: str, production_dsn: str
) -> None:
    """The state machine above holds for the explored interleavings."""
    run_state_machine_as_test(
        lambda: SyncMachine(staging_dsn, production_dsn),  # type: ignore[arg-type]  # a factory is accepted
        settings=settings(max_examples=30, stateful_step_count=15, deadline=None),
    )
