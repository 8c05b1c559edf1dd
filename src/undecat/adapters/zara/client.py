"""Zara's store locator and in-store stock endpoints on urllib3.

Both endpoints are undocumented (see ``../shared/notes/external-apis.md``)::

    GET {base}/{cc}/{lang}/stores-locator/extended/search?lat=&lng=&radius=&...&ajax=true
        -> [{"id", "name", "commercialName", "addressLines", "city", "countryCode",
             "latitude", "longitude", ...}]
    GET {base}/{cc}/{lang}/store-product-availability?productId=P&physicalStoreIds=S...&ajax=true
        -> {"productId", "sizesAvailableAndLocationsByPhysicalStores":
             [{"physicalStoreId", "sizesAvailability": [{"sizeId", "size", "stock"}]}]}

Every request carries ``ZARA_USER_AGENT``, goes through ``PROXY_URL`` when set, and verifies
TLS (system CAs plus ``PROXY_CA_BUNDLE``). Requests pass one shared :class:`Politeness`
(``AVAILABILITY_CONCURRENCY`` at once, a random ``AVAILABILITY_DELAY_MIN..MAX`` pause before
each). What each answer means, decided here and nowhere else:

* 200 with the expected JSON -> the stores' sizes; a store left out has nothing in stock, and
  a size with ``stock`` 0 is not in stock;
* 404, an empty body, ``[]`` or ``{}`` -> nothing in stock anywhere (not an error);
* 429/503 -> wait (``Retry-After`` honoured, capped), along the backoff schedule; still busy
  after it -> :class:`~undecat.errors.RemoteServiceError` (the whole run stops);
* 403 -> :class:`~undecat.errors.BlockedError`, the anti-bot block; the job backs off and
  counts blocks in a row;
* malformed JSON or an unexpected shape -> :class:`~undecat.errors.ProductError` of that
  product, with the reason;
* other statuses and network failures -> :class:`~undecat.errors.RemoteServiceError`, or
  :class:`~undecat.errors.ProxyError` when the proxy itself is unreachable.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import attrs
import urllib3
from urllib3 import exceptions as u3

from undecat.adapters.http.backoff import BUSY_STATUSES, Busy, retry_after_seconds, retrying
from undecat.adapters.http.politeness import Politeness
from undecat.adapters.http.pool import pool_manager, tls_context
from undecat.domain.models import SizeInStock, Store
from undecat.errors import (
    BlockedError,
    ProductError,
    ProxyError,
    RemoteServiceError,
)
from undecat.ports import Clock
from undecat.redact import Secret, redact_url

__all__ = ["ZaraClient", "ZaraSettings"]

_STOCK_KEY = "sizesAvailableAndLocationsByPhysicalStores"


@attrs.frozen
class ZaraSettings:
    """What the client needs (read from the configuration by ``undecat.settings``)."""

    user_agent: str
    base_url: str = "https://www.zara.com"
    country: str = "ae"
    lang: str = "en"
    lat: float = 25.2048
    lng: float = 55.2708
    radius: int = 100
    proxy_url: Secret | None = attrs.field(default=None, repr=False)
    ca_bundle: Path | None = None
    timeout: float = 30.0
    backoff: tuple[float, ...] = (5.0, 15.0, 45.0)
    max_retry_after: float = 300.0
    concurrency: int = 1
    delay_min: float = 5.0
    delay_max: float = 8.0


@attrs.frozen
class _Answer:
    status: int
    data: bytes = attrs.field(repr=False)
    retry_after: str | None = None


class ZaraClient:
    """The :class:`~undecat.ports.StoreLocator` and :class:`~undecat.ports.AvailabilitySource`.

    Safe to share between threads; ``requests_sent`` counts every request that went out.
    """

    def __init__(
        self, settings: ZaraSettings, *, clock: Clock, rng: random.Random | None = None
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._root = f"{settings.base_url.rstrip('/')}/{settings.country}/{settings.lang}"
        self.politeness = Politeness(
            limit=settings.concurrency,
            delay_min=settings.delay_min,
            delay_max=settings.delay_max,
            clock=clock,
            rng=rng,
        )
        self._pool = _build_pool(settings)
        self._count_lock = threading.Lock()
        self.requests_sent = 0

    def __repr__(self) -> str:
        proxy = (
            "None"
            if self._settings.proxy_url is None
            else redact_url(self._settings.proxy_url.reveal())
        )
        return f"ZaraClient({self._root!r}, proxy={proxy!r})"

    def close(self) -> None:
        """Close the pooled connections."""
        self._pool.clear()

    # The ports ---------------------------------------------------------------------------

    def stores(self) -> list[Store]:
        """Return the stores of the configured country near the configured point."""
        s = self._settings
        query = urlencode(
            {
                "lat": s.lat,
                "lng": s.lng,
                "radius": s.radius,
                "isDonationOnly": "false",
                "showOnlyPickup": "false",
                "showStoresCapacity": "false",
                "ajax": "true",
            }
        )
        answer = self._get(f"{self._root}/stores-locator/extended/search?{query}", "store locator")
        if answer.status == 404 or not answer.data.strip():
            return []
        try:
            payload = json.loads(answer.data)
        except ValueError as exc:
            raise RemoteServiceError(f"Zara store locator: malformed JSON: {exc}") from exc
        if not isinstance(payload, list):
            raise RemoteServiceError(
                f"Zara store locator: expected a JSON array, got {type(payload).__name__}"
            )
        stores: dict[int, Store] = {}
        for entry in payload:
            store = self._store(entry)
            if store is not None:
                stores[store.store_id] = store
        return [stores[k] for k in sorted(stores)]

    def in_stock(
        self, colour_product_id: str, store_ids: Sequence[int]
    ) -> dict[int, list[SizeInStock]]:
        """Return the in-stock sizes of one colour product per store (see the module doc)."""
        query = urlencode(
            [("productId", colour_product_id)]
            + [("physicalStoreIds", str(i)) for i in store_ids]
            + [("ajax", "true")]
        )
        what = f"stock of {colour_product_id}"
        answer = self._get(f"{self._root}/store-product-availability?{query}", what)
        if answer.status == 404 or not answer.data.strip():
            return {}
        try:
            payload = json.loads(answer.data)
        except ValueError as exc:
            raise ProductError(
                f"availability: malformed JSON for {colour_product_id}: {exc}",
                product=colour_product_id,
            ) from exc
        return _parse_stock(payload, colour_product_id, set(store_ids))

    # HTTP ---------------------------------------------------------------------------------

    def _get(self, url: str, what: str) -> _Answer:
        policy = retrying(
            self._settings.backoff, self._clock, max_retry_after=self._settings.max_retry_after
        )
        try:
            return policy(self._answer, url, what)
        except Busy as exc:
            waited = ", ".join(f"{s:g}" for s in self._settings.backoff)
            raise RemoteServiceError(
                f"Zara {what}: {exc.reason} still after backing off {waited} s"
            ) from None

    def _answer(self, url: str, what: str) -> _Answer:
        """One request: its answer, or :class:`Busy` for a 429/503."""
        with self.politeness.slot():
            answer = self._send(url, what)
        if answer.status in (200, 404):
            return answer
        if answer.status == 403:
            raise BlockedError(f"Zara {what}: HTTP 403, the anti-bot block")
        if answer.status not in BUSY_STATUSES:
            raise RemoteServiceError(f"Zara {what}: unexpected HTTP {answer.status}")
        asked = retry_after_seconds(answer.retry_after, self._clock.now())
        raise Busy(f"HTTP {answer.status}", retry_after=asked)

    def _send(self, url: str, what: str) -> _Answer:
        headers = {
            "User-Agent": self._settings.user_agent,
            "Accept": "application/json",
            "Accept-Language": f"{self._settings.lang}-{self._settings.country.upper()}",
        }
        timeout = urllib3.Timeout(
            connect=min(10.0, self._settings.timeout), read=self._settings.timeout
        )
        with self._count_lock:
            self.requests_sent += 1
        try:
            response = self._pool.request(
                "GET", url, headers=headers, redirect=False, retries=False, timeout=timeout
            )
        except u3.ProxyError as exc:
            raise ProxyError(f"Zara {what}: the proxy failed: {_first_line(exc)}") from exc
        except u3.HTTPError as exc:
            raise RemoteServiceError(f"Zara {what}: request failed: {_first_line(exc)}") from exc
        return _Answer(
            status=response.status,
            data=response.data,
            retry_after=response.headers.get("Retry-After"),
        )

    def _store(self, entry: Any) -> Store | None:
        if not isinstance(entry, dict):
            return None
        store_id = entry.get("id")
        if isinstance(store_id, bool) or not isinstance(store_id, int | str):
            return None
        try:
            number = int(store_id)
        except ValueError:
            return None
        country = str(entry.get("countryCode") or "").upper()
        if country != self._settings.country.upper():
            return None
        lines = entry.get("addressLines")
        address = (
            ", ".join(str(line) for line in lines if line) if isinstance(lines, list) else None
        )
        name = _text(entry.get("name"))
        commercial = _text(entry.get("commercialName"))
        return Store(
            brand="zara",
            store_id=number,
            name=commercial or name,
            address=address or None,
            city=_text(entry.get("city")) or "Dubai",
            country=country,
            mall_name=name if commercial and name and name != commercial else None,
            latitude=_coordinate(entry.get("latitude")),
            longitude=_coordinate(entry.get("longitude")),
        )


def _parse_stock(  # noqa: PLR0912  # one check per field of the wire shape
    payload: Any, colour_product_id: str, asked: set[int]
) -> dict[int, list[SizeInStock]]:
    """The stores' sizes of one stock answer; ProductError for an unexpected shape."""

    def bad(reason: str) -> ProductError:
        return ProductError(
            f"availability: unexpected answer for {colour_product_id}: {reason}",
            product=colour_product_id,
        )

    if payload in ([], {}):
        return {}
    if not isinstance(payload, dict):
        raise bad(f"a JSON {type(payload).__name__}, not an object")
    entries = payload.get(_STOCK_KEY)
    if entries is None:
        raise bad(f"no {_STOCK_KEY}")
    if not isinstance(entries, list):
        raise bad(f"{_STOCK_KEY} is not a list")
    out: dict[int, list[SizeInStock]] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            raise bad("a store entry is not an object")
        store_id = entry.get("physicalStoreId")
        if isinstance(store_id, bool) or not isinstance(store_id, int):
            raise bad(f"physicalStoreId {store_id!r} is not a number")
        sizes = entry.get("sizesAvailability", [])
        if not isinstance(sizes, list):
            raise bad(f"sizesAvailability of store {store_id} is not a list")
        found = out.setdefault(store_id, [])
        for size in sizes:
            if not isinstance(size, dict):
                raise bad(f"a size of store {store_id} is not an object")
            label = size.get("size")
            if not isinstance(label, str) or not label.strip():
                raise bad(f"a size of store {store_id} has no name")
            stock = size.get("stock")
            if stock is not None and (isinstance(stock, bool) or not isinstance(stock, int)):
                raise bad(f"stock {stock!r} of size {label} is not a number")
            if stock is not None and stock <= 0:
                continue
            found.append(SizeInStock(colour="", size=label.strip(), stock=stock))
    return {k: v for k, v in out.items() if k in asked}


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _coordinate(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return round(number, 7) if number.is_finite() else None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return redact_url(text.splitlines()[0]) if text else type(exc).__name__


def _build_pool(settings: ZaraSettings) -> urllib3.PoolManager:
    """One pool: through the proxy (credentials as a header) when set, else direct."""
    return pool_manager(
        settings.proxy_url,
        tls_context(settings.ca_bundle),
        num_pools=4,
        maxsize=max(1, settings.concurrency),
        retries=False,
    )
