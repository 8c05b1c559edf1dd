"""Secrets in any form never reach a log line, a stored error message or a repr() (18.9, 16.4)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.seed import column_values, seed_rows
from undecat import cli
from undecat.adapters.clock import SystemClock
from undecat.adapters.http.fetcher import FetchSettings, ProxyPhotoFetcher
from undecat.adapters.postgres import Database, PostgresRunRecorder, PostgresWorkQueue
from undecat.config import Config
from undecat.domain.models import RunResult
from undecat.domain.stages import Stage
from undecat.redact import RedactingFilter, Secret, redact_text, redact_url

SECRET = "S3kr1t-value"

#: One message per form a secret takes; each carries SECRET.
MESSAGES = {
    "access_token": f"GET https://static.zara.net/a.jpg?access_token={SECRET}&w=1 failed",
    "api_key": f"GET https://api.example/v1?api_key={SECRET} failed",
    "apikey": f"see https://api.example/v1?x=1&apikey={SECRET}",
    "token": f"https://api.apify.com/v2/actor-tasks/x/runs?token={SECRET} said 401",
    "authorization header": f"request headers: Authorization: Token {SECRET}",
    "authorization dict": f"headers={{'Authorization': 'Bearer {SECRET}', 'Accept': '*/*'}}",
    "proxy-authorization": f"sent Proxy-Authorization: Basic {SECRET}\nthen 407",
    "url password": f"cannot reach http://user:{SECRET}@proxy.example:3128 (refused)",
    "url password with @": f"cannot reach http://user:p@{SECRET}@proxy.example:3128/",
    "url password with / and #": f"at postgresql://u:a/{SECRET}#x@db:5432/staging: refused",
    "dsn sslpassword": f"connection 'host=db user=u sslpassword={SECRET}' failed",
    "dsn password": f"connection 'host=db user=u password={SECRET} dbname=x' failed",
    "url sslpassword": f"postgresql://u@db/staging?sslmode=require&sslpassword={SECRET}",
}


@pytest.fixture
def redacting_logs() -> Iterator[None]:
    """The runners' log set-up (cli), undone after the test."""
    root = logging.getLogger()
    before = {h: list(h.filters) for h in root.handlers}
    cli._setup_logging()
    yield
    for handler in root.handlers:
        handler.filters = before.get(handler, [])


@pytest.mark.parametrize("message", MESSAGES.values(), ids=MESSAGES.keys())
def test_redact_text_masks_every_form(message: str) -> None:
    """Each form of secret is masked by redact_text, the rest of the message kept."""
    shown = redact_text(message)
    assert SECRET not in shown
    assert "***" in shown


def _raise(message: str) -> None:
    raise RuntimeError(message)


@pytest.mark.parametrize("message", MESSAGES.values(), ids=MESSAGES.keys())
def test_log_lines_are_redacted(
    message: str, redacting_logs: None, caplog: pytest.LogCaptureFixture
) -> None:
    """A line logged by anyone, arguments or traceback included, is written masked."""
    log = logging.getLogger("undecat.jobs.somewhere")
    with caplog.at_level(logging.INFO):
        log.warning("fetch failed: %s", message)
        try:
            _raise(message)
        except RuntimeError:
            log.exception("while working")
    assert len(caplog.records) == 2
    assert SECRET not in caplog.text
    for handler in logging.getLogger().handlers:
        handler_text = "".join(handler.format(r) for r in caplog.records)
        assert SECRET not in handler_text


@pytest.mark.parametrize("message", MESSAGES.values(), ids=MESSAGES.keys())
def test_run_log_error_is_stored_redacted(
    message: str, staging_db: Database, staging_dsn: str
) -> None:
    """scraper_logs.error_message holds the message masked."""
    recorder = PostgresRunRecorder(staging_db)
    run = recorder.start("redaction_job")
    recorder.finish(run, RunResult(status="failed", error_message=message))
    with psycopg.connect(staging_dsn) as conn:
        (stored,) = conn.execute("SELECT error_message FROM scraper_logs").fetchone() or ("",)
    assert SECRET not in stored
    assert "***" in stored


@pytest.mark.parametrize("message", MESSAGES.values(), ids=MESSAGES.keys())
def test_product_error_is_stored_redacted(
    message: str, staging_db: Database, staging_dsn: str
) -> None:
    """raw_products.error_message holds a failed product's message masked."""
    seed_rows(staging_dsn, 1)
    queue = PostgresWorkQueue(staging_db, Stage.DOWNLOAD)
    (claim,) = queue.claim("w", 1, timedelta(minutes=5))
    assert queue.fail(claim, message)
    (stored,) = column_values(staging_dsn, "error_message").values()
    assert SECRET not in str(stored)
    assert "***" in str(stored)


@pytest.mark.parametrize("message", MESSAGES.values(), ids=MESSAGES.keys())
def test_cli_error_line_is_redacted(message: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The one line a failing command prints to stderr is masked."""
    cli._fail(message)
    assert SECRET not in capsys.readouterr().err


URL_VARIABLES = {
    "STAGING_DB_URL": f"postgresql://downloader:{SECRET}@localhost:6432/unde_staging",
    "PROXY_URL": f"http://customer-zone:{SECRET}@localhost:33335",
    "S3_ENDPOINT": f"https://objects.example/?X-Amz-Signature={SECRET}",
    "APIFY_API_URL": f"https://api.apify.com/?token={SECRET}",
    "XIMILAR_API_URL": f"https://api.ximilar.com/?api_key={SECRET}",
}


@pytest.mark.parametrize(("name", "value"), URL_VARIABLES.items())
def test_config_repr_masks_every_url(name: str, value: str) -> None:
    """repr() of the configuration masks each URL variable's secret."""
    config = Config.from_env({name: value})
    assert SECRET not in repr(config)
    assert SECRET not in str(config)


def test_fetcher_repr_masks_the_proxy_password() -> None:
    """repr() of the fetcher shows no part of a proxy password, an unencoded @ in it too."""
    settings = FetchSettings(
        proxy_url=Secret(f"http://customer:p@{SECRET}@127.0.0.1:9"),
        allowed_hosts=("static.zara.net",),
    )
    fetcher = ProxyPhotoFetcher(settings, clock=SystemClock())
    try:
        assert SECRET not in repr(fetcher)
    finally:
        fetcher.close()


def test_redacting_filter_scrubs_known_secret_values() -> None:
    """Values known to be secret are scrubbed even when they appear alone in a line."""
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "got %s", (SECRET,), None)
    RedactingFilter([SECRET]).filter(record)
    assert record.getMessage() == "got ***"


_PASSWORD = st.text(alphabet=st.sampled_from("abcXYZ019-_.~!$&'()*+,;=:/?#@[]%"), min_size=1)


@given(user=st.from_regex(r"[a-z][a-z0-9_-]{0,10}", fullmatch=True), password=_PASSWORD)
def test_redact_url_masks_the_whole_userinfo_whatever_it_holds(user: str, password: str) -> None:
    """Everything between :// and the last @ of the authority is masked, odd characters too."""
    url = f"http://{user}:{password}@proxy.example:8080/p"
    shown = redact_url(url)
    assert shown == f"http://{user}:***@proxy.example:8080/p"
    assert redact_text(f"at {url} then") == f"at {shown} then"
