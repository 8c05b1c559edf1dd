"""The housekeeping jobs the photo downloader and the collage hosts share.

``retry_failed`` sends a stage's failed products with attempts left back to its queue;
``cleanup_temp`` clears old scratch files from ``DATA_DIR/tmp`` (the document's "clear
/app/data", narrowed to scratch: ``DATA_DIR`` also holds the filesystem object store).
"""

from __future__ import annotations

import logging
import stat
from datetime import timedelta
from pathlib import Path

from undecat.domain.models import RunResult
from undecat.domain.status import RunStatus
from undecat.ports import Clock, WorkQueue

__all__ = ["cleanup_temp", "retry_failed"]

_log = logging.getLogger("undecat.jobs.maintenance")


def retry_failed(queue: WorkQueue) -> RunResult:
    """Send the stage's ``error`` products with attempts left back to its queue."""
    requeued = queue.requeue_failed()
    _log.info("%s: %d failed product(s) requeued", queue.stage.value, requeued)
    return RunResult(
        status=RunStatus.SUCCESS, records_updated=requeued, metadata={"requeued": requeued}
    )


def cleanup_temp(
    data_dir: Path, clock: Clock, *, host: str, max_age: timedelta = timedelta(days=1)
) -> RunResult:
    """Delete scratch files (and emptied folders) older than ``max_age`` under ``data_dir/tmp``.

    Only ``tmp`` is touched: ``DATA_DIR`` also holds the filesystem object store, which is
    data, not leftovers. Symbolic links are removed as links, never followed.
    """
    scratch = data_dir / "tmp"
    cutoff = (clock.now() - max_age).timestamp()
    removed = kept = failed = 0
    # Ages are read before anything is deleted: removing a file touches its folder's mtime,
    # which would otherwise make every emptied folder look fresh.
    entries = [(path, path.lstat()) for path in scratch.rglob("*")] if scratch.is_dir() else []
    # Deepest first, so a folder is looked at after everything in it.
    entries.sort(key=lambda entry: len(entry[0].parts), reverse=True)
    for path, status in entries:
        try:
            if status.st_mtime >= cutoff:
                kept += 1
            elif stat.S_ISDIR(status.st_mode):
                if any(path.iterdir()):
                    kept += 1
                else:
                    path.rmdir()
                    removed += 1
            else:
                path.unlink()
                removed += 1
        except FileNotFoundError:  # another cleanup got there first
            continue
        except OSError as exc:
            _log.warning("%s cleanup_temp: cannot remove %s: %s", host, path, exc)
            failed += 1
    _log.info(
        "%s cleanup_temp: removed %d, kept %d, failed %d under %s",
        host,
        removed,
        kept,
        failed,
        scratch,
    )
    return RunResult(
        status=RunStatus.PARTIAL if failed else RunStatus.SUCCESS,
        records_updated=removed,
        records_errors=failed,
        metadata={"removed": removed, "kept": kept, "failed": failed, "folder": str(scratch)},
    )
