"""``retention``: the collage host's daily clean-up of old run logs and delisted products' objects.

* ``scraper_logs`` rows older than ``RUN_LOG_RETENTION_DAYS`` are deleted.
* A product delisted more than ``DELISTED_RETENTION_DAYS`` ago loses its photos and collage:
  the keys are computed from its brand and id (``domain.keys``) and deleted one by one, never
  by listing a prefix, then the row records it (``objects_purged_at``; ``image_status`` back
  to ``pending``, so a product that comes back is downloaded again).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from undecat.domain.keys import collage_key, original_key
from undecat.domain.models import RunResult
from undecat.domain.status import RunStatus
from undecat.errors import ProductError
from undecat.ports import Clock, ObjectStore, RetentionStore

__all__ = ["retention"]

_log = logging.getLogger("undecat.jobs.retention")


def retention(
    store: RetentionStore,
    objects: ObjectStore,
    clock: Clock,
    *,
    run_log_days: int,
    delisted_days: int,
    batch_size: int = 200,
) -> RunResult:
    """Delete run logs and delisted products' objects past their retention; one run."""
    now = clock.now()
    logs_deleted = store.delete_run_logs_older_than(run_log_days)
    cutoff = now - timedelta(days=delisted_days)
    products = objects_deleted = failed = 0
    seen: set[int] = set()
    while True:
        batch = [p for p in store.delisted_before(cutoff, batch_size) if p.row_id not in seen]
        if not batch:
            break
        for product in batch:
            seen.add(product.row_id)
            keys = [
                original_key(product.brand, product.external_id, n)
                for n in range(1, product.photos + 1)
            ]
            if product.has_collage:
                keys.append(collage_key(product.brand, product.external_id))
            try:
                objects_deleted += objects.delete(keys)
            except ProductError as exc:
                failed += 1
                _log.warning(
                    "retention: objects of %s/%s not deleted: %s",
                    product.brand,
                    product.external_id,
                    exc,
                )
                continue
            if store.forget_objects(product.row_id, cutoff):
                products += 1
    _log.info(
        "retention: %d run log(s) older than %d days deleted; %d delisted product(s) cleared"
        " (%d object(s) deleted)",
        logs_deleted,
        run_log_days,
        products,
        objects_deleted,
    )
    return RunResult(
        status=RunStatus.PARTIAL if failed else RunStatus.SUCCESS,
        records_fetched=len(seen),
        records_updated=products + logs_deleted,
        records_errors=failed,
        metadata={
            "run_logs_deleted": logs_deleted,
            "delisted_products_cleared": products,
            "objects_deleted": objects_deleted,
        },
    )
