"""The photo fetch circuit breaker, end to end through proxy.py: a blocked exit is an outage."""

from __future__ import annotations

import pytest

from tests.fix_origin import Origin, Reply
from tests.photo_samples import rgb_jpeg
from tests.test_download_e2e import add_products, env, last_run, rows, run_job
from undecat.adapters.postgres import Database
from undecat.adapters.postgres.embedded import free_port

__all__ = ["env"]  # the fixture, shared with the end-to-end module


@pytest.fixture
def breaker_env(env: dict[str, str]) -> dict[str, str]:
    """One product at a time (a deterministic order), breaker at three products."""
    return {**env, "CONCURRENT_DOWNLOADS": "1", "PROXY_BREAKER_THRESHOLD": "3"}


def _assert_nothing_charged(dsn: str, count: int) -> None:
    found = rows(dsn)
    assert len(found) == count
    for row in found.values():
        assert row["image_status"] == "pending"
        assert row["download_attempts"] == 0
        assert row["download_owner"] is None
        assert row["error_message"] is None


def test_proxy_that_cannot_reach_any_origin_stops_the_run_and_charges_nobody(
    breaker_env: dict[str, str], staging_dsn: str, staging_db: Database
) -> None:
    """CONNECT refused (502 from the proxy) on product after product: failed run, no attempt."""
    dead = free_port()
    add_products(staging_db, {f"p{n}": [f"https://localhost:{dead}/{n}.jpg"] for n in range(6)})
    result = run_job({**breaker_env, "ALLOWED_PHOTO_HOSTS": f"localhost:{dead}"})
    assert result.status == "failed"
    assert result.error_message is not None
    assert "3 products in a row failed at the transport level" in result.error_message
    assert result.records_errors == 0
    _assert_nothing_charged(staging_dsn, 6)
    assert last_run(staging_dsn)["status"] == "failed"


def test_tls_failing_everywhere_stops_the_run(
    breaker_env: dict[str, str], staging_dsn: str, staging_db: Database, origin: Origin
) -> None:
    """Certificates that never verify (an exit that intercepts TLS) trip the breaker too."""
    without_ca = {k: v for k, v in breaker_env.items() if k != "PROXY_CA_BUNDLE"}
    origin.serve_default(Reply(body=rgb_jpeg()))
    add_products(staging_db, {f"t{n}": [origin.url(f"/t/{n}.jpg", tls=True)] for n in range(5)})
    result = run_job(without_ca)
    assert result.status == "failed"
    assert "TLS" in (result.error_message or "")
    _assert_nothing_charged(staging_dsn, 5)


def test_403_from_several_hosts_trips_but_from_one_host_fails_the_products(
    breaker_env: dict[str, str], staging_dsn: str, staging_db: Database, origin: Origin
) -> None:
    """A CDN refusing its own photos fails them; two different hosts refusing us is an outage."""
    origin.serve_default(Reply(status=403, body=b"forbidden"))
    add_products(staging_db, {f"f{n}": [origin.url(f"/f/{n}.jpg")] for n in range(4)})
    one_host = run_job(breaker_env)
    assert (one_host.status, one_host.records_errors) == ("partial", 4)
    assert all(r["image_status"] == "error" for r in rows(staging_dsn).values())
    assert all("403" in r["error_message"] for r in rows(staging_dsn).values())

    with staging_db.transaction("clear") as cur:
        cur.execute("TRUNCATE raw_products")
    hosts = ["localhost", "127.0.0.1", "localhost", "127.0.0.1"]
    add_products(
        staging_db, {f"h{n}": [origin.url(f"/h/{n}.jpg", host=h)] for n, h in enumerate(hosts)}
    )
    both = f"localhost:{origin.http_port},127.0.0.1:{origin.http_port}"
    several = run_job({**breaker_env, "ALLOWED_PHOTO_HTTP_HOSTS": both})
    assert several.status == "failed"
    assert "127.0.0.1" in (several.error_message or "")
    _assert_nothing_charged(staging_dsn, 4)


def test_a_success_in_between_ends_the_streak_and_fails_the_held_products(
    breaker_env: dict[str, str], staging_dsn: str, staging_db: Database, origin: Origin
) -> None:
    """Two transport failures, a success, two more: four ordinary errors, one upload, no trip."""
    dead = free_port()
    origin.serve("/ok.jpg", Reply(body=rgb_jpeg()))
    urls = {
        "a": f"http://localhost:{dead}/a.jpg",
        "b": f"http://localhost:{dead}/b.jpg",
        "c": origin.url("/ok.jpg"),
        "d": f"http://localhost:{dead}/d.jpg",
        "e": f"http://localhost:{dead}/e.jpg",
    }
    add_products(staging_db, {k: [u] for k, u in urls.items()})
    plain = f"localhost:{dead},localhost:{origin.http_port}"
    result = run_job({**breaker_env, "ALLOWED_PHOTO_HTTP_HOSTS": plain})
    assert (result.status, result.records_new, result.records_errors) == ("partial", 1, 4)
    found = rows(staging_dsn)
    assert found["c"]["image_status"] == "uploaded"
    for key in "abde":
        assert found[key]["image_status"] == "error"
        assert found[key]["download_attempts"] == 1
