"""The private user media bucket on real SeaweedFS: pairs, signed URLs, deleting a user."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import urllib3

from tests.fix_s3 import S3Bucket, SeaweedS3
from undecat.adapters.objectstore import S3Settings, UserMediaStore, open_user_media
from undecat.config import Config
from undecat.domain.keys import MediaKind
from undecat.errors import ObjectStoreUnavailableError
from undecat.redact import Secret

IMAGE = b"\xff\xd8full-image" * 200
THUMB = b"\xff\xd8thumb"


def _settings(bucket: S3Bucket, endpoint: str | None = None, **options: float) -> S3Settings:
    return S3Settings(
        endpoint or bucket.endpoint,
        Secret(bucket.access_key),
        Secret(bucket.secret_key),
        **options,  # type: ignore[arg-type]
    )


@pytest.fixture
def media(s3_bucket: S3Bucket) -> Iterator[UserMediaStore]:
    """A UserMediaStore on an empty bucket."""
    store = UserMediaStore(_settings(s3_bucket), s3_bucket.bucket)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def http() -> Iterator[urllib3.PoolManager]:
    """A plain HTTP client (no proxy), as a phone would fetch a signed URL."""
    with urllib3.PoolManager(retries=False, timeout=5.0) as pool:
        yield pool


def _keys(bucket: S3Bucket) -> set[str]:
    listed = bucket.client.list_objects_v2(Bucket=bucket.bucket)
    return {item["Key"] for item in listed.get("Contents", []) if "Key" in item}


def test_pair_is_stored_under_the_documented_keys(
    media: UserMediaStore, s3_bucket: S3Bucket
) -> None:
    """Storing a pair writes the image and its thumbnail, typed, at the layout's keys."""
    pair = media.store_pair("user-1", MediaKind.TRYON, "t9", IMAGE, THUMB)
    assert (pair.main, pair.thumb) == ("user-1/tryon/t9/result.jpg", "user-1/tryon/t9/thumb.jpg")
    assert _keys(s3_bucket) == {pair.main, pair.thumb}
    head = s3_bucket.client.head_object(Bucket=s3_bucket.bucket, Key=pair.main)
    assert head["ContentType"] == "image/jpeg"


def test_signed_urls_read_the_private_objects(
    media: UserMediaStore, s3_bucket: S3Bucket, http: urllib3.PoolManager
) -> None:
    """Signed URLs fetch the image and thumbnail; the same URLs without signature are refused."""
    media.store_pair("u1", MediaKind.PHOTO, "p1", IMAGE, THUMB)
    main_url, thumb_url = media.signed_pair("u1", MediaKind.PHOTO, "p1")
    assert urlsplit(main_url).hostname == "127.0.0.1"
    main, thumb = http.request("GET", main_url), http.request("GET", thumb_url)
    assert (main.status, main.data) == (200, IMAGE)
    assert (thumb.status, thumb.data) == (200, THUMB)
    unsigned = main_url.split("?", 1)[0]
    assert http.request("GET", unsigned).status == 403


def test_signed_url_lifetime(media: UserMediaStore) -> None:
    """A signed URL carries the requested lifetime (default 15 minutes; 1 s to 7 days allowed)."""
    key = media.keys("u1", MediaKind.SAVED, "o1").main
    query = parse_qs(urlsplit(media.signed_url(key)).query)
    assert query["X-Amz-Expires"] == ["900"]
    query = parse_qs(urlsplit(media.signed_url(key, timedelta(hours=2))).query)
    assert query["X-Amz-Expires"] == ["7200"]
    for bad in (timedelta(0), timedelta(days=8)):
        with pytest.raises(ValueError, match="between"):
            media.signed_url(key, bad)


@pytest.mark.slow
def test_signed_url_expires(media: UserMediaStore, http: urllib3.PoolManager) -> None:
    """Once its lifetime is over, a signed URL no longer reads the object (one 2 s real wait)."""
    media.store_pair("u1", MediaKind.PHOTO, "p1", IMAGE, THUMB)
    url = media.signed_url(media.keys("u1", MediaKind.PHOTO, "p1").main, timedelta(seconds=1))
    assert http.request("GET", url).status == 200
    time.sleep(2.1)  # X-Amz-Date has whole seconds: 2 s is past a 1 s lifetime for sure
    assert http.request("GET", url).status == 403


def test_delete_user_removes_everything_of_that_user_only(
    s3_bucket: S3Bucket,
) -> None:
    """Deleting a user pages through all their items in batches and spares other users."""
    media = UserMediaStore(_settings(s3_bucket), s3_bucket.bucket, page_size=3)
    try:
        for n in range(4):
            media.store_pair("u1", MediaKind.PHOTO, f"p{n}", IMAGE, THUMB)
        media.store_pair("u1", MediaKind.TRYON, "t1", IMAGE, THUMB)
        media.store_pair("u1", MediaKind.SAVED, "o1", IMAGE, THUMB)
        media.store_pair("u10", MediaKind.PHOTO, "p1", IMAGE, THUMB)  # shares the prefix "u1"
        media.store_pair("u2", MediaKind.PHOTO, "p1", IMAGE, THUMB)
        assert media.delete_user("u1") == 12
        assert _keys(s3_bucket) == {
            "u10/photos/p1/original.jpg",
            "u10/photos/p1/thumb.jpg",
            "u2/photos/p1/original.jpg",
            "u2/photos/p1/thumb.jpg",
        }
        assert media.delete_user("u1") == 0
    finally:
        media.close()


def test_user_ids_cannot_reach_other_users(media: UserMediaStore, s3_bucket: S3Bucket) -> None:
    """A user id shaped like a path ('u2/..', '../u2') gets a folder of its own."""
    media.store_pair("u2", MediaKind.PHOTO, "p1", IMAGE, THUMB)
    for sneaky in ("u2/photos", "../u2", "u2/..", ""):
        media.store_pair(sneaky, MediaKind.PHOTO, "p1", b"x", b"y")
        assert media.delete_user(sneaky) == 2
    assert _keys(s3_bucket) == {"u2/photos/p1/original.jpg", "u2/photos/p1/thumb.jpg"}


class CutSecondPut:
    """A TCP relay to S3 that drops the connection carrying the second PUT it sees.

    A real network fault between the two uploads of a pair; every other request (the
    clean-up included) is relayed untouched.
    """

    def __init__(self, target_port: int) -> None:
        self._target = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._puts = 0
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self._target))
            self._sockets += [client, upstream]
            for source, sink, watch in ((client, upstream, True), (upstream, client, False)):
                thread = threading.Thread(
                    target=self._pump, args=(source, sink, watch), daemon=True
                )
                thread.start()
                self._threads.append(thread)

    def _pump(self, source: socket.socket, sink: socket.socket, watch: bool) -> None:
        try:
            while data := source.recv(65536):
                if watch and data.startswith(b"PUT "):
                    with self._lock:
                        self._puts += 1
                        cut = self._puts == 2
                    if cut:
                        break
                sink.sendall(data)
        except OSError:
            pass
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Stop relaying and close every socket."""
        # shutdown, not just close: it wakes the threads blocked in accept() and recv().
        for sock in (self._listener, *self._sockets):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._accepting.join(timeout=5)
        for thread in self._threads:
            thread.join(timeout=5)
        for sock in (self._listener, *self._sockets):
            sock.close()


def test_pair_is_both_or_neither(s3_server: SeaweedS3, s3_bucket: S3Bucket) -> None:
    """When the thumbnail upload fails, the image already stored is removed and S3 holds neither."""
    relay = CutSecondPut(s3_server.port)
    media = UserMediaStore(
        _settings(s3_bucket, f"http://127.0.0.1:{relay.port}", max_attempts=1),
        s3_bucket.bucket,
    )
    try:
        with pytest.raises(ObjectStoreUnavailableError) as caught:
            media.store_pair("u1", MediaKind.PHOTO, "p1", IMAGE, THUMB)
        assert "u1" not in str(caught.value)
        assert _keys(s3_bucket) == set()
    finally:
        media.close()
        relay.close()


def test_open_user_media_uses_its_own_bucket(s3_bucket: S3Bucket) -> None:
    """The user media store is built from S3_ENDPOINT and S3_USER_MEDIA_BUCKET (not S3_BUCKET)."""
    config = Config.from_env(
        s3_bucket.env(S3_BUCKET="unde-images", S3_USER_MEDIA_BUCKET=s3_bucket.bucket)
    )
    assert Config.from_env({}).s3_user_media_bucket == "unde-user-media"
    media = open_user_media(config)
    try:
        assert media.bucket == s3_bucket.bucket
        media.store_pair("u1", MediaKind.PHOTO, "p1", IMAGE, THUMB)
        assert len(_keys(s3_bucket)) == 2
        assert s3_bucket.secret_key not in repr(media)
    finally:
        media.close()
