"""The Zara adapter against a local fake speaking Zara's wire format: each answer, each fault."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import pytest

from tests.fakes import FakeClock
from tests.fix_proxy import ProxyServer
from tests.fix_zara import ZaraReply, ZaraServer, store_entry
from undecat.adapters.zara import ZaraClient, ZaraSettings
from undecat.config import Config
from undecat.domain.models import SizeInStock
from undecat.errors import (
    BlockedError,
    ConfigError,
    ProductError,
    ProxyError,
    RemoteServiceError,
)
from undecat.redact import Secret
from undecat.settings import zara_settings

AGENT = "ZaraApp/15.10.0 test"


def client(zara: ZaraServer, clock: FakeClock | None = None, **changes: object) -> ZaraClient:
    """A client of the fake, no politeness pauses, a short backoff schedule."""
    fields: dict[str, object] = {
        "user_agent": AGENT,
        "base_url": zara.base_url(),
        "delay_min": 0.0,
        "delay_max": 0.0,
        "backoff": (1.0, 2.0),
        "timeout": 5.0,
    }
    fields.update(changes)
    return ZaraClient(ZaraSettings(**fields), clock=clock or FakeClock())  # type: ignore[arg-type]


def test_the_locator_keeps_the_configured_countrys_stores(zara: ZaraServer) -> None:
    """Stores of other countries and entries without a numeric id are left out."""
    zara.fake.stores = [
        store_entry(1236),
        store_entry(99, country="SA"),
        {"name": "no id", "countryCode": "AE"},
        store_entry(1240),
    ]
    stores = client(zara).stores()
    assert [s.store_id for s in stores] == [1236, 1240]
    first = stores[0]
    assert (first.brand, first.country, first.city) == ("zara", "AE", "Dubai")
    assert first.address == "Unit 1236, Dubai Mall"
    assert first.latitude is not None
    assert abs(float(first.latitude) - 25.198436) < 1e-6
    (path, query) = zara.fake.requests[0]
    assert path == "/ae/en/stores-locator/extended/search"
    assert query["lat"] == ["25.2048"]
    assert query["lng"] == ["55.2708"]
    assert query["ajax"] == ["true"]
    assert query["isDonationOnly"] == ["false"]
    assert zara.fake.user_agents == [AGENT]


def test_stock_of_one_colour_for_all_stores_in_one_request(zara: ZaraServer) -> None:
    """The answer maps stores to sizes; a missing store and a zero stock mean not in stock."""
    zara.fake.stock["512918856"] = {1236: [("S", 6), ("M", 0), ("L", None)], 1240: [("XS", 0)]}
    answer = client(zara).in_stock("512918856", [1236, 1240, 1250])
    assert answer == {
        1236: [SizeInStock("", "S", 6), SizeInStock("", "L", None)],
        1240: [],
    }
    (query,) = zara.fake.stock_requests()
    assert query["productId"] == ["512918856"]
    assert query["physicalStoreIds"] == ["1236", "1240", "1250"]


@pytest.mark.parametrize(
    "reply",
    [
        ZaraReply(status=404, body=b"{}"),
        ZaraReply(body=b""),
        ZaraReply(body=b"[]"),
        ZaraReply(body=b"{}"),
        ZaraReply(body=b'{"productId": 1, "sizesAvailableAndLocationsByPhysicalStores": []}'),
    ],
    ids=["404", "empty-body", "empty-array", "empty-object", "no-store-listed"],
)
def test_answers_meaning_nothing_in_stock(zara: ZaraServer, reply: ZaraReply) -> None:
    """404, an empty body, [] and {} are 'nothing in stock', not an error."""
    zara.fake.scripts["1"] = collections.deque([reply])
    assert client(zara).in_stock("1", [1236]) == {}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"productId": 1, "sizesAvail', "malformed JSON"),
        (b'"just a string"', "not an object"),
        (b'{"productId": 1}', "no sizesAvailableAndLocationsByPhysicalStores"),
        (b'{"sizesAvailableAndLocationsByPhysicalStores": {"a": 1}}', "is not a list"),
        (
            b'{"sizesAvailableAndLocationsByPhysicalStores": [{"physicalStoreId": "x"}]}',
            "physicalStoreId 'x' is not a number",
        ),
        (
            b'{"sizesAvailableAndLocationsByPhysicalStores": [{"physicalStoreId": 1,'
            b' "sizesAvailability": [{"size": "S", "stock": "many"}]}]}',
            "stock 'many' of size S is not a number",
        ),
    ],
)
def test_unreadable_answers_are_the_products_error(
    zara: ZaraServer, body: bytes, reason: str
) -> None:
    """Malformed JSON or an unexpected shape is a ProductError naming the reason."""
    zara.fake.scripts["1"] = collections.deque([ZaraReply(body=body)])
    with pytest.raises(ProductError, match=reason):
        client(zara).in_stock("1", [1])


def test_403_is_the_anti_bot_block(zara: ZaraServer) -> None:
    """A 403 raises BlockedError at once (the job decides how long to back off)."""
    zara.fake.every_stock.append(ZaraReply(status=403, body=b"Access Denied"))
    with pytest.raises(BlockedError, match="403"):
        client(zara).in_stock("1", [1])
    assert len(zara.fake.stock_requests()) == 1


def test_429_waits_as_long_as_retry_after_asks_then_succeeds(zara: ZaraServer) -> None:
    """Retry-After (seconds) is honoured when it asks for longer than the schedule."""
    zara.fake.stock["7"] = {1: [("M", 2)]}
    zara.fake.every_stock.extend(
        [ZaraReply(status=429, headers={"Retry-After": "12"}), ZaraReply(status=503)]
    )
    clock = FakeClock()
    assert client(zara, clock).in_stock("7", [1]) == {1: [SizeInStock("", "M", 2)]}
    assert clock.sleeps == [12.0, 2.0]


def test_still_busy_after_the_schedule_is_an_outage(zara: ZaraServer) -> None:
    """503 after every backoff step stops the run (RemoteServiceError), not one product."""
    zara.fake.every_stock.extend([ZaraReply(status=503)] * 3)
    clock = FakeClock()
    with pytest.raises(RemoteServiceError, match="503 still after backing off 1, 2 s"):
        client(zara, clock).in_stock("7", [1])
    assert clock.sleeps == [1.0, 2.0]


def test_unreachable_site_is_an_outage(zara: ZaraServer) -> None:
    """Connection refused is a RemoteServiceError."""
    from undecat.adapters.postgres.embedded import free_port  # noqa: PLC0415

    dead = client(zara, base_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(RemoteServiceError, match="request failed"):
        dead.in_stock("1", [1])


def test_tls_is_verified(zara: ZaraServer, origin_ca: Path) -> None:
    """Over HTTPS the fake's certificate is accepted only with its CA in PROXY_CA_BUNDLE."""
    zara.fake.stock["5"] = {1: [("S", 1)]}
    trusted = client(zara, base_url=zara.base_url(tls=True, host="localhost"), ca_bundle=origin_ca)
    assert trusted.in_stock("5", [1]) == {1: [SizeInStock("", "S", 1)]}
    untrusted = client(zara, base_url=zara.base_url(tls=True, host="localhost"))
    with pytest.raises(RemoteServiceError, match="request failed"):
        untrusted.in_stock("5", [1])


def test_requests_go_through_the_proxy(zara: ZaraServer, proxy_server: ProxyServer) -> None:
    """With PROXY_URL set every request goes through it; a wrong password is a ProxyError."""
    zara.fake.stock["5"] = {1: [("S", 1)]}
    through = client(zara, proxy_url=Secret(proxy_server.url))
    assert through.in_stock("5", [1]) == {1: [SizeInStock("", "S", 1)]}
    assert proxy_server.password not in repr(through)
    refused = client(zara, proxy_url=Secret(proxy_server.url_with("wrong")))
    with pytest.raises((ProxyError, RemoteServiceError)):
        refused.in_stock("5", [1])


def test_the_user_agent_is_required() -> None:
    """Without ZARA_USER_AGENT the availability jobs refuse to start, naming it."""
    with pytest.raises(ConfigError, match="ZARA_USER_AGENT"):
        zara_settings(Config())


def test_settings_come_from_the_environment() -> None:
    """ZARA_* and AVAILABILITY_* variables reach the client settings."""
    config = Config.from_env(
        {
            "ZARA_USER_AGENT": AGENT,
            "ZARA_BASE_URL": "https://zara.example",
            "ZARA_COUNTRY": "AE",
            "AVAILABILITY_CONCURRENCY": "2",
            "AVAILABILITY_DELAY_MIN": "1",
            "AVAILABILITY_DELAY_MAX": "3",
        }
    )
    settings = zara_settings(config)
    assert (settings.base_url, settings.country, settings.concurrency) == (
        "https://zara.example",
        "ae",
        2,
    )
    assert (settings.delay_min, settings.delay_max) == (1.0, 3.0)
    assert json.dumps(config.dubai_zara_stores) == "[]"
