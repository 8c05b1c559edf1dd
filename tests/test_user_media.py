"""undecat.user_media against the real SeaweedFS and PostgreSQL of the suite.

The facade runs with S3 credentials the server refuses LIST for (the user media bucket
allows no listing), so every path here -- erase included -- is proven not to list.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import botocore.exceptions
import psycopg
import psycopg_pool
import pytest
import urllib3

from tests.fix_db import PgServer
from tests.fix_pgbouncer import BOUNCER_PASSWORD, Bouncer
from tests.fix_s3 import NO_LIST_ACCESS_KEY, NO_LIST_SECRET_KEY, S3Bucket, SeaweedS3, make_client
from tests.user_media_samples import gps_of, jpeg, pixels, png, thumb
from undecat.adapters.objectstore.user_media import UserMediaStore
from undecat.cli import main as cli_main
from undecat.config import Config
from undecat.errors import ConfigError, ObjectStoreUnavailableError, UserMediaError
from undecat.user_media import MediaKind, UserMedia

ROOT = Path(__file__).resolve().parents[1]
MAIN = jpeg(640, 480, gps=True)
THUMB = thumb(200, gps=True)


@pytest.fixture(scope="module")
def production_dsn(pg_server: PgServer) -> Iterator[str]:
    """A fresh production database, migrated by `undecat migrate --database production`."""
    name = pg_server.create_database("t_user_media")
    dsn = pg_server.dsn_for(name)
    assert cli_main(["migrate", "--database", "production", "--url", dsn]) == 0
    try:
        yield dsn
    finally:
        pg_server.drop_database(name)


@pytest.fixture
def env(s3_bucket: S3Bucket, production_dsn: str) -> dict[str, str]:
    """The backend's environment: an empty bucket (LIST refused), an empty index."""
    with psycopg.connect(production_dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE user_media.objects")
    return {
        "S3_ENDPOINT": s3_bucket.endpoint,
        "S3_ACCESS_KEY": NO_LIST_ACCESS_KEY,
        "S3_SECRET_KEY": NO_LIST_SECRET_KEY,
        "S3_USER_MEDIA_BUCKET": s3_bucket.bucket,
        "PRODUCTION_DB_URL": production_dsn,
    }


@pytest.fixture
def media(env: dict[str, str]) -> Iterator[UserMedia]:
    """A UserMedia built from that environment."""
    with UserMedia.from_env(env) as built:
        yield built


@pytest.fixture
def http() -> Iterator[urllib3.PoolManager]:
    """A plain HTTP client, as a phone fetching a signed URL."""
    with urllib3.PoolManager(retries=False, timeout=5.0) as pool:
        yield pool


def _objects(bucket: S3Bucket) -> dict[str, bytes]:
    """Every object of the bucket, read with the admin identity (which may list)."""
    listed = bucket.client.list_objects_v2(Bucket=bucket.bucket)
    keys = [item["Key"] for item in listed.get("Contents", []) if "Key" in item]
    return {
        key: bucket.client.get_object(Bucket=bucket.bucket, Key=key)["Body"].read() for key in keys
    }


def _rows(dsn: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT key, user_id, kind, item_id, bytes, complete FROM user_media.objects"
            " ORDER BY key"
        ).fetchall()


def test_the_bucket_refuses_list_to_the_libraries_credentials(s3_bucket: S3Bucket) -> None:
    """The credentials every test here uses may not LIST the bucket (so no path lists it)."""
    client = make_client(s3_bucket.endpoint, NO_LIST_ACCESS_KEY, NO_LIST_SECRET_KEY)
    with pytest.raises(botocore.exceptions.ClientError, match="AccessDenied"):
        client.list_objects_v2(Bucket=s3_bucket.bucket)
    client.put_object(Bucket=s3_bucket.bucket, Key="probe", Body=b"x")  # but may write
    client.delete_object(Bucket=s3_bucket.bucket, Key="probe")


@pytest.mark.slow
def test_store_sign_fetch_expire_erase(
    media: UserMedia, s3_bucket: S3Bucket, env: dict[str, str], http: urllib3.PoolManager
) -> None:
    """The whole life of a photo: stored at its keys, read through signed URLs, expired, erased."""
    stored = media.store("user-1", MediaKind.PHOTO, "photo-1", MAIN, THUMB)
    assert (stored.main_key, stored.thumb_key) == (
        "user-1/photos/photo-1/original.jpg",
        "user-1/photos/photo-1/thumb.jpg",
    )
    assert (stored.width, stored.height, stored.thumb_width, stored.thumb_height) == (
        640,
        480,
        200,
        150,
    )
    assert stored.location_removed
    objects = _objects(s3_bucket)
    assert set(objects) == {stored.main_key, stored.thumb_key}
    head = s3_bucket.client.head_object(Bucket=s3_bucket.bucket, Key=stored.main_key)
    assert head["ContentType"] == "image/jpeg"

    main_url, thumb_url = media.signed_urls("user-1", "photos", "photo-1")
    assert urlsplit(main_url).hostname == "127.0.0.1"
    assert parse_qs(urlsplit(main_url).query)["X-Amz-Expires"] == ["900"]
    main, small = http.request("GET", main_url), http.request("GET", thumb_url)
    assert (main.status, main.data) == (200, objects[stored.main_key])
    assert (small.status, small.data) == (200, objects[stored.thumb_key])
    assert gps_of(main.data) == {}
    assert pixels(main.data) == pixels(MAIN)
    assert http.request("GET", main_url.split("?", 1)[0]).status == 403  # private

    short, _ = media.signed_urls("user-1", MediaKind.PHOTO, "photo-1", expires=timedelta(seconds=1))
    assert http.request("GET", short).status == 200
    time.sleep(2.1)  # X-Amz-Date has whole seconds: 2 s is past a 1 s lifetime for sure
    assert http.request("GET", short).status == 403

    report = media.erase_user("user-1")
    assert (report.objects, report.items, report.bytes) == (
        2,
        1,
        stored.main_bytes + stored.thumb_bytes,
    )
    assert _objects(s3_bucket) == {}
    assert _rows(env["PRODUCTION_DB_URL"]) == []
    assert http.request("GET", main_url).status == 404


def test_a_signed_url_opens_its_own_object_only(
    media: UserMedia, http: urllib3.PoolManager
) -> None:
    """A signed URL edited to another key (another user's, or the thumbnail) is refused."""
    media.store("alice", MediaKind.PHOTO, "p1", MAIN, THUMB)
    media.store("bob", MediaKind.PHOTO, "p1", MAIN, THUMB)
    url, _ = media.signed_urls("alice", MediaKind.PHOTO, "p1")
    assert http.request("GET", url).status == 200
    for edited in (
        url.replace("/alice/", "/bob/"),
        url.replace("original.jpg", "thumb.jpg"),
        url.replace("X-Amz-Expires=900", "X-Amz-Expires=604800"),
    ):
        assert edited != url
        assert http.request("GET", edited).status == 403


def test_signed_url_lifetime_is_capped_at_seven_days(media: UserMedia) -> None:
    """Expiry is configurable per call; 7 days is the longest, 0 or 8 days are refused."""
    url, _ = media.signed_urls("u1", "saved", "o1", expires=timedelta(days=7))
    assert parse_qs(urlsplit(url).query)["X-Amz-Expires"] == ["604800"]
    for bad in (timedelta(0), timedelta(days=7, seconds=1)):
        with pytest.raises(ValueError, match="7 days"):
            media.signed_urls("u1", "saved", "o1", expires=bad)


def test_url_lifetime_and_caps_come_from_the_environment(env: dict[str, str]) -> None:
    """USER_MEDIA_URL_SECONDS sets the default expiry; more than 7 days is a ConfigError."""
    with UserMedia.from_env({**env, "USER_MEDIA_URL_SECONDS": "7200"}) as media:
        url, _ = media.signed_urls("u1", MediaKind.TRYON, "t1")
        assert parse_qs(urlsplit(url).query)["X-Amz-Expires"] == ["7200"]
    with pytest.raises(ConfigError, match="USER_MEDIA_URL_SECONDS"):
        UserMedia.from_env({**env, "USER_MEDIA_URL_SECONDS": str(8 * 86400)})
    with pytest.raises(ConfigError, match="PRODUCTION_DB_URL"):
        UserMedia.from_env({k: v for k, v in env.items() if k != "PRODUCTION_DB_URL"})


def test_kinds_use_the_documented_file_names(media: UserMedia, s3_bucket: S3Bucket) -> None:
    """The photos and saved kinds store original.jpg, tryon result.jpg, each with thumb.jpg."""
    for kind in MediaKind:
        media.store("u1", kind, "i1", MAIN, THUMB)
    assert set(_objects(s3_bucket)) == {
        "u1/photos/i1/original.jpg",
        "u1/photos/i1/thumb.jpg",
        "u1/tryon/i1/result.jpg",
        "u1/tryon/i1/thumb.jpg",
        "u1/saved/i1/original.jpg",
        "u1/saved/i1/thumb.jpg",
    }


def _truncated() -> bytes:
    data = jpeg(640, 480)
    return data[: len(data) * 2 // 3]


BAD_INPUTS: dict[str, tuple[dict[str, Any], str]] = {
    "png called original.jpg": ({"main": png()}, "original.jpg: not a JPEG \\(a PNG\\)"),
    "png thumbnail": ({"thumb": png(200, 150)}, "thumb.jpg: not a JPEG"),
    "1000 px thumbnail": ({"thumb": jpeg(1000, 750, quality=30)}, "at most 200 px"),
    "thumbnail not smaller": ({"main": jpeg(180, 120), "thumb": thumb(180)}, "not smaller"),
    "original over the cap": ({"main": b"\xff\xd8\xff" + b"\0" * (8 * 1024 * 1024)}, "cap"),
    "thumbnail over the cap": ({"thumb": b"\xff\xd8\xff" + b"\0" * (64 * 1024)}, "cap"),
    "truncated jpeg": ({"main": _truncated()}, "does not decode|truncated|malformed"),
    "empty original": ({"main": b""}, "empty"),
    "empty thumbnail": ({"thumb": b""}, "empty"),
    "user ../other": ({"user_id": "../other"}, "user id"),
    "user a/b": ({"user_id": "a/b"}, "user id"),
    "empty user": ({"user_id": ""}, "user id: it is empty"),
    "nul in item": ({"item_id": "p\x001"}, "item id"),
    "over-long item": ({"item_id": "p" * 65}, "65 characters"),
    "unknown kind": ({"kind": "videos"}, "unknown media kind"),
}


@pytest.mark.parametrize("case", BAD_INPUTS, ids=list(BAD_INPUTS))
def test_bad_input_is_refused_and_nothing_is_stored(
    case: str, media: UserMedia, s3_bucket: S3Bucket, env: dict[str, str]
) -> None:
    """Each bad input is a clear UserMediaError; no object and no index row is written."""
    given, message = BAD_INPUTS[case]
    call: dict[str, Any] = {
        "user_id": "u1",
        "kind": MediaKind.PHOTO,
        "item_id": "p1",
        "main": MAIN,
        "thumb": THUMB,
        **given,
    }
    with pytest.raises(UserMediaError, match=message):
        media.store(**call)
    assert _objects(s3_bucket) == {}
    assert _rows(env["PRODUCTION_DB_URL"]) == []


def test_a_decompression_bomb_is_refused_from_its_header(
    env: dict[str, str], s3_bucket: S3Bucket
) -> None:
    """A small file declaring more pixels than USER_MEDIA_MAX_PIXELS is refused before decoding."""
    with UserMedia.from_env({**env, "USER_MEDIA_MAX_PIXELS": "100000"}) as media:
        with pytest.raises(UserMediaError, match="decompression bomb"):
            media.store("u1", MediaKind.PHOTO, "p1", jpeg(400, 300), THUMB)
        media.store("u1", MediaKind.PHOTO, "p1", jpeg(300, 300), THUMB)  # 90,000 px passes
    assert len(_objects(s3_bucket)) == 2


def test_caps_are_configurable(env: dict[str, str]) -> None:
    """USER_MEDIA_MAX_MAIN_BYTES and USER_MEDIA_MAX_THUMB_BYTES move the size caps."""
    with (
        UserMedia.from_env({**env, "USER_MEDIA_MAX_MAIN_BYTES": str(len(MAIN) - 1)}) as media,
        pytest.raises(UserMediaError, match=f"more than the cap of {len(MAIN) - 1}"),
    ):
        media.store("u1", MediaKind.PHOTO, "p1", MAIN, THUMB)
    with (
        UserMedia.from_env({**env, "USER_MEDIA_MAX_THUMB_BYTES": "100"}) as media,
        pytest.raises(UserMediaError, match=r"thumb\.jpg"),
    ):
        media.store("u1", MediaKind.PHOTO, "p1", MAIN, THUMB)


def test_location_is_kept_only_when_configured(env: dict[str, str], s3_bucket: S3Bucket) -> None:
    """USER_MEDIA_KEEP_LOCATION=true stores the files byte for byte, GPS included."""
    with UserMedia.from_env({**env, "USER_MEDIA_KEEP_LOCATION": "true"}) as media:
        stored = media.store("u1", MediaKind.PHOTO, "p1", MAIN, THUMB)
    assert not stored.location_removed
    objects = _objects(s3_bucket)
    assert objects[stored.main_key] == MAIN
    assert gps_of(objects[stored.main_key]) != {}


def test_overwrite_and_retry_replace_both_files(
    media: UserMedia, s3_bucket: S3Bucket, env: dict[str, str]
) -> None:
    """Storing an item again replaces both files and their index rows; a retry is harmless."""
    first = media.store("u1", MediaKind.TRYON, "t1", MAIN, THUMB)
    again = media.store("u1", MediaKind.TRYON, "t1", MAIN, THUMB)
    assert first == again
    new_main, new_thumb = jpeg(800, 600, colour=(0, 0, 255)), thumb(160)
    replaced = media.store("u1", MediaKind.TRYON, "t1", new_main, new_thumb)
    objects = _objects(s3_bucket)
    assert len(objects) == 2
    assert pixels(objects[replaced.main_key]) == pixels(new_main)
    assert objects[replaced.thumb_key] == new_thumb
    rows = _rows(env["PRODUCTION_DB_URL"])
    assert [(r[0], r[4], r[5]) for r in rows] == [
        (replaced.main_key, replaced.main_bytes, True),
        (replaced.thumb_key, replaced.thumb_bytes, True),
    ]


def test_usage_counts_complete_items_per_kind(media: UserMedia) -> None:
    """usage() gives items and bytes per kind (zeros for an empty kind), other users apart."""
    a = media.store("u1", MediaKind.PHOTO, "p1", MAIN, THUMB)
    b = media.store("u1", MediaKind.PHOTO, "p2", MAIN, THUMB)
    c = media.store("u1", MediaKind.SAVED, "o1", MAIN, THUMB)
    media.store("u2", MediaKind.PHOTO, "p1", MAIN, THUMB)
    usage = media.usage("u1")
    size = a.main_bytes + a.thumb_bytes
    assert usage.by_kind[MediaKind.PHOTO].items == 2
    assert usage.by_kind[MediaKind.PHOTO].bytes == size + b.main_bytes + b.thumb_bytes
    assert usage.by_kind[MediaKind.SAVED].items == 1
    assert usage.by_kind[MediaKind.TRYON].items == 0
    assert usage.items == 3
    assert (
        usage.bytes
        == 3 * size
        == size + b.main_bytes + b.thumb_bytes + c.main_bytes + c.thumb_bytes
    )
    assert media.usage("nobody").items == 0


def test_delete_item_removes_one_item_only(
    media: UserMedia, s3_bucket: S3Bucket, env: dict[str, str]
) -> None:
    """delete_item removes the item's two objects and rows; the user's other items stay."""
    media.store("u1", MediaKind.PHOTO, "p1", MAIN, THUMB)
    media.store("u1", MediaKind.PHOTO, "p2", MAIN, THUMB)
    assert media.delete_item("u1", "photos", "p1") is True
    assert media.delete_item("u1", "photos", "p1") is False
    assert set(_objects(s3_bucket)) == {"u1/photos/p2/original.jpg", "u1/photos/p2/thumb.jpg"}
    assert [r[0] for r in _rows(env["PRODUCTION_DB_URL"])] == sorted(_objects(s3_bucket))


def test_erase_spares_other_users_and_works_in_batches(
    env: dict[str, str], s3_bucket: S3Bucket
) -> None:
    """Erasing u1 (in batches of 3 objects) removes all of u1 and nothing of u10 or u2."""
    with UserMedia.from_env({**env, "USER_MEDIA_ERASE_BATCH": "3"}) as media:
        for n in range(4):
            media.store("u1", MediaKind.PHOTO, f"p{n}", MAIN, THUMB)
        media.store("u1", MediaKind.TRYON, "t1", MAIN, THUMB)
        media.store("u10", MediaKind.PHOTO, "p1", MAIN, THUMB)  # shares the text prefix "u1"
        media.store("u2", MediaKind.SAVED, "o1", MAIN, THUMB)
        before = _objects(s3_bucket)
        report = media.erase_user("u1")
        assert (report.objects, report.items, report.batches) == (10, 5, 4)
        after = _objects(s3_bucket)
        assert set(after) == {k for k in before if k.startswith(("u10/", "u2/"))}
        assert all(after[k] == before[k] for k in after)
        assert media.erase_user("u1").objects == 0
        assert media.usage("u10").items == 1
        assert media.usage("u2").items == 1
        with pytest.raises(UserMediaError):
            media.erase_user("../u2")


def test_no_public_method_takes_a_raw_key() -> None:
    """Issue 16.7: every public method names items by (user_id, kind, item_id), never by key."""
    allowed = {
        "self",
        "user_id",
        "kind",
        "item_id",
        "main",
        "thumb",
        "expires",
        "environ",
        "config",
        "pool",
        "exc",
        "item",
        "items",
        "lifetime",
        "settings",
        "bucket",
    }
    for cls in (UserMedia, UserMediaStore):
        for name, member in inspect.getmembers(cls, callable):
            if name.startswith("_") and name != "__init__":
                continue
            if name == "__init__" and cls is UserMedia:
                continue
            params = set(inspect.signature(member).parameters)
            assert params <= allowed, (cls.__name__, name, params - allowed)
    assert not hasattr(UserMediaStore, "signed_url")


def test_repr_shows_no_secret(media: UserMedia, env: dict[str, str]) -> None:
    """repr() of the facade names the endpoint and bucket, never a key or a password."""
    shown = repr(media)
    assert env["S3_USER_MEDIA_BUCKET"] in shown
    assert NO_LIST_SECRET_KEY not in shown
    assert NO_LIST_ACCESS_KEY not in shown


def test_built_on_the_backends_own_pool(env: dict[str, str], s3_bucket: S3Bucket) -> None:
    """from_config(config, pool=...) uses the backend's psycopg pool and leaves it open."""
    config = Config.from_env(env)
    with psycopg_pool.ConnectionPool(env["PRODUCTION_DB_URL"], min_size=1, max_size=2) as pool:
        with UserMedia.from_config(config, pool=pool) as media:
            media.store("u1", MediaKind.PHOTO, "p1", MAIN, THUMB)
            assert media.usage("u1").items == 1
        assert not pool.closed
        with pool.connection() as conn:
            assert conn.execute("SELECT count(*) FROM user_media.objects").fetchone() == (2,)
    assert len(_objects(s3_bucket)) == 2


def test_works_through_pgbouncer_in_transaction_mode(
    env: dict[str, str], pgbouncer: Bouncer, s3_bucket: S3Bucket
) -> None:
    """Store, overwrite, usage, delete and erase run through PgBouncer (no session state)."""
    dbname = psycopg.conninfo.conninfo_to_dict(env["PRODUCTION_DB_URL"])["dbname"]
    through = (
        f"postgresql://{pgbouncer.user}:{BOUNCER_PASSWORD}@127.0.0.1:{pgbouncer.port}/{dbname}"
    )
    with UserMedia.from_env({**env, "PRODUCTION_DB_URL": through}) as media:
        for n in range(3):
            media.store("u1", MediaKind.SAVED, f"o{n}", MAIN, THUMB)
        media.store("u1", MediaKind.SAVED, "o0", MAIN, THUMB)
        assert media.usage("u1").by_kind[MediaKind.SAVED].items == 3
        assert media.delete_item("u1", MediaKind.SAVED, "o2")
        assert media.erase_user("u1").objects == 4
    assert _objects(s3_bucket) == {}


def test_the_index_refuses_keys_outside_the_layout(production_dsn: str) -> None:
    """The table's CHECKs refuse a key that is not its user/kind/item's file, and unsafe ids."""
    insert = (
        "INSERT INTO user_media.objects (key, user_id, kind, item_id, bytes, attempt)"
        " VALUES (%s, %s, %s, %s, 1, gen_random_uuid())"
    )
    bad = [
        ("u2/photos/p1/original.jpg", "u1", "photos", "p1"),
        ("u1/photos/p1/result.jpg", "u1", "photos", "p1"),
        ("../x/photos/p1/thumb.jpg", "../x", "photos", "p1"),
        ("u1/videos/p1/thumb.jpg", "u1", "videos", "p1"),
    ]
    with psycopg.connect(production_dsn, autocommit=True) as conn:
        for row in bad:
            with pytest.raises(psycopg.errors.CheckViolation):
                conn.execute(insert, row)


# --- faults from the real server, through a TCP relay -------------------------------------


class Relay:
    """A TCP relay to S3 whose ``decide(request_line)`` may cut a request or hold its answer.

    ``decide`` returns ``"pass"``, ``"cut"`` (drop the connection before the request reaches
    the server) or ``"hold"`` (forward it, then never forward the answer: ``held`` is set once
    the server has answered, i.e. has done the work).
    """

    def __init__(self, target_port: int, decide: Callable[[bytes], str]) -> None:
        self._target = target_port
        self._decide = decide
        self.held = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._start(self._accept)

    def _start(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self._target))
            self._sockets += [client, upstream]
            hold = threading.Event()
            self._start(self._requests, client, upstream, hold)
            self._start(self._answers, upstream, client, hold)

    def _requests(self, source: socket.socket, sink: socket.socket, hold: threading.Event) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if re.match(rb"(GET|PUT|POST|DELETE|HEAD) ", data):
                    action = self._decide(data.split(b"\r\n", 1)[0])
                    if action == "cut":
                        break
                    if action == "hold":
                        hold.set()
                sink.sendall(data)
        self._shut(source, sink)

    def _answers(self, source: socket.socket, sink: socket.socket, hold: threading.Event) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if hold.is_set():
                    self.held.set()
                    return  # the answer never reaches the client
                sink.sendall(data)
        self._shut(source, sink)

    @staticmethod
    def _shut(*ends: socket.socket) -> None:
        for end in ends:
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Stop relaying and close every socket."""
        self._shut(self._listener, *self._sockets)
        for thread in self._threads:
            thread.join(timeout=5)
        for sock in (self._listener, *self._sockets):
            sock.close()


def _counting(rule: Callable[[bytes, int], str]) -> Callable[[bytes], str]:
    """A ``decide`` that also passes how many requests of the same method came before."""
    seen: dict[bytes, int] = {}
    lock = threading.Lock()

    def decide(line: bytes) -> str:
        method = line.split(b" ", 1)[0]
        with lock:
            seen[method] = seen.get(method, 0) + 1
            count = seen[method]
        return rule(line, count)

    return decide


@contextlib.contextmanager
def _through(
    env: dict[str, str], server: SeaweedS3, rule: Callable[[bytes, int], str]
) -> Iterator[tuple[UserMedia, Relay]]:
    relay = Relay(server.port, _counting(rule))
    config = Config.from_env({**env, "S3_ENDPOINT": relay.endpoint})
    try:
        with UserMedia.from_config(config) as media:
            yield media, relay
    finally:
        relay.close()


def test_a_pair_whose_second_put_fails_leaves_nothing(
    env: dict[str, str], s3_server: SeaweedS3, s3_bucket: S3Bucket
) -> None:
    """Every attempt at the thumbnail upload is cut: the image is removed, the rows forgotten."""

    def cut_thumb(line: bytes, _count: int) -> str:
        return "cut" if line.startswith(b"PUT ") and b"/thumb.jpg" in line else "pass"

    with (
        _through(env, s3_server, cut_thumb) as (media, _),
        pytest.raises(ObjectStoreUnavailableError) as caught,
    ):
        media.store("u1", MediaKind.PHOTO, "p1", MAIN, THUMB)
    assert "u1" not in str(caught.value)
    assert _objects(s3_bucket) == {}
    assert _rows(env["PRODUCTION_DB_URL"]) == []


def test_a_store_that_cannot_clean_up_leaves_rows_erase_finds(
    env: dict[str, str], s3_server: SeaweedS3, s3_bucket: S3Bucket, media: UserMedia
) -> None:
    """S3 gone after the first PUT: the orphan image keeps an incomplete row; erase removes it."""

    def die_after_first_put(line: bytes, count: int) -> str:
        return "pass" if line.startswith(b"PUT ") and count == 1 else "cut"

    with (
        _through(env, s3_server, die_after_first_put) as (broken, _),
        pytest.raises(ObjectStoreUnavailableError),
    ):
        broken.store("u1", MediaKind.PHOTO, "p1", MAIN, THUMB)
    assert set(_objects(s3_bucket)) == {"u1/photos/p1/original.jpg"}
    rows = _rows(env["PRODUCTION_DB_URL"])
    assert [(r[0], r[5]) for r in rows] == [
        ("u1/photos/p1/original.jpg", False),
        ("u1/photos/p1/thumb.jpg", False),
    ]
    assert media.usage("u1").items == 0  # incomplete items are not counted
    report = media.erase_user("u1")
    assert report.objects == 2
    assert _objects(s3_bucket) == {}
    assert _rows(env["PRODUCTION_DB_URL"]) == []


_ERASE = """
import sys
from undecat.user_media import UserMedia
UserMedia.from_env().erase_user(sys.argv[1])
"""


def test_erase_killed_half_way_finishes_when_run_again(
    env: dict[str, str], s3_server: SeaweedS3, s3_bucket: S3Bucket, media: UserMedia
) -> None:
    """An erase SIGKILLed after S3 deleted its 2nd batch (rows not yet gone) is finished later."""
    for n in range(5):
        media.store("u1", MediaKind.PHOTO, f"p{n}", MAIN, THUMB)
    media.store("u2", MediaKind.PHOTO, "p0", MAIN, THUMB)
    keep = {k: v for k, v in _objects(s3_bucket).items() if k.startswith("u2/")}

    def hold_second_delete(line: bytes, count: int) -> str:
        return "hold" if line.startswith(b"POST ") and b"delete" in line and count == 2 else "pass"

    relay = Relay(s3_server.port, _counting(hold_second_delete))
    child_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("S3_", "PRODUCTION_"))},
        **env,
        "S3_ENDPOINT": relay.endpoint,
        "USER_MEDIA_ERASE_BATCH": "4",
    }
    child = subprocess.Popen([sys.executable, "-c", _ERASE, "u1"], env=child_env, cwd=ROOT)
    try:
        assert relay.held.wait(timeout=60), "the erase never reached its second batch"
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        relay.close()
    left = _objects(s3_bucket)
    assert len([k for k in left if k.startswith("u1/")]) == 2  # 3rd batch never started
    rows = [r for r in _rows(env["PRODUCTION_DB_URL"]) if r[1] == "u1"]
    assert len(rows) == 6  # batch 2's rows survived the kill although its objects are gone

    report = media.erase_user("u1")
    assert report.objects == 6
    assert _objects(s3_bucket) == keep
    assert [r[1] for r in _rows(env["PRODUCTION_DB_URL"])] == ["u2", "u2"]


def test_storing_while_the_user_is_erased_keeps_nothing(
    env: dict[str, str], s3_server: SeaweedS3, s3_bucket: S3Bucket, media: UserMedia
) -> None:
    """A store whose rows were erased during its uploads deletes what it wrote and says so."""

    def erase_during_thumb_put(line: bytes, _count: int) -> str:
        if line.startswith(b"PUT ") and b"/thumb.jpg" in line:
            media.erase_user("u1")  # another request erases the user mid-store
        return "pass"

    with (
        _through(env, s3_server, erase_during_thumb_put) as (racing, _),
        pytest.raises(UserMediaError, match="deleted while it was being stored"),
    ):
        racing.store("u1", MediaKind.PHOTO, "p1", MAIN, THUMB)
    assert _objects(s3_bucket) == {}
    assert _rows(env["PRODUCTION_DB_URL"]) == []


# --- the README's example runs -------------------------------------------------------------


def _readme_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## User media", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert blocks, "the README's user media section has no Python example"
    return "\n".join(blocks)


def test_the_readme_example_runs(
    env: dict[str, str], s3_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The backend example in the README runs as written against the suite's S3 and database."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    namespace: dict[str, Any] = {"original": MAIN, "thumbnail": THUMB}
    exec(compile(_readme_example(), "README.md", "exec"), namespace)  # noqa: S102
    assert namespace["answer"]["status"] == 201
    assert namespace["bad"]["status"] == 400
    assert namespace["erased"]["objects"] == 2
    assert _objects(s3_bucket) == {}


def test_migration_is_self_contained(pg_server: PgServer) -> None:
    """0002_user_media.sql applies on an empty database by itself (it needs nothing of 0001)."""
    name = pg_server.create_database("t_user_media_alone")
    try:
        sql = (ROOT / "sql" / "production" / "0002_user_media.sql").read_text(encoding="utf-8")
        with psycopg.connect(pg_server.dsn_for(name), autocommit=True) as conn:
            conn.execute(sql.encode())
            found = conn.execute("SELECT to_regclass('user_media.objects')::text").fetchone()
        assert found == ("user_media.objects",)
    finally:
        pg_server.drop_database(name)


def test_the_facade_imports_no_io_library() -> None:
    """undecat.user_media is thin: only its _build module reaches the adapters (and Pillow)."""
    folder = ROOT / "src" / "undecat" / "user_media"
    for path in folder.glob("*.py"):
        if path.name == "_build.py":
            continue
        text = path.read_text(encoding="utf-8")
        for library in ("psycopg", "boto3", "botocore", "PIL", "undecat.adapters"):
            assert not re.search(rf"^\s*(import|from) {re.escape(library)}\b", text, re.M), (
                path.name,
                library,
            )


def test_keep_location_must_be_a_boolean(env: dict[str, str]) -> None:
    """USER_MEDIA_KEEP_LOCATION takes true/false (1/0, yes/no); anything else is a ConfigError."""
    assert Config.from_env({"USER_MEDIA_KEEP_LOCATION": "Yes"}).user_media_keep_location
    assert not Config.from_env({}).user_media_keep_location
    with pytest.raises(ConfigError, match="USER_MEDIA_KEEP_LOCATION"):
        UserMedia.from_env({**env, "USER_MEDIA_KEEP_LOCATION": "maybe"})
