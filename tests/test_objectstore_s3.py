"""The S3 adapter against a real SeaweedFS server: types, URLs, outages, credentials, proxies."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
import pytest
import urllib3

from tests.fix_s3 import S3Bucket, SeaweedS3, make_client
from undecat.adapters.objectstore import (
    FileObjectStore,
    S3ObjectStore,
    S3Settings,
    open_object_store,
)
from undecat.bootstrap import Resources
from undecat.config import Config
from undecat.domain.keys import collage_key, original_key
from undecat.errors import ConfigError, ObjectStoreUnavailableError, ProductError
from undecat.redact import Secret
from undecat.settings import object_store_settings, s3_settings

JPEG = b"\xff\xd8\xff\xe0" + b"x" * 2000

_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY")


def _store(
    bucket: S3Bucket,
    *,
    endpoint: str | None = None,
    access_key: str | None = None,
    secret_key: str | None = None,
    name: str | None = None,
    base: str | None = None,
    **options: float,
) -> S3ObjectStore:
    settings = S3Settings(
        endpoint or bucket.endpoint,
        Secret(access_key or bucket.access_key),
        Secret(secret_key or bucket.secret_key),
        **options,  # type: ignore[arg-type]
    )
    return S3ObjectStore(
        settings,
        name or bucket.bucket,
        public_base_url=base or f"{bucket.endpoint}/{bucket.bucket}",
    )


@pytest.fixture
def store(s3_bucket: S3Bucket) -> Iterator[S3ObjectStore]:
    """An S3ObjectStore on an empty bucket."""
    built = _store(s3_bucket)
    try:
        yield built
    finally:
        built.close()


def test_content_type_is_stored(store: S3ObjectStore, s3_bucket: S3Bucket) -> None:
    """The Content-Type given to put is the one S3 serves the object with."""
    key = original_key("zara", "1", 1)
    store.put(key, JPEG, "image/jpeg")
    store.put(collage_key("zara", "1"), b"png", "image/png")
    head = s3_bucket.client.head_object(Bucket=s3_bucket.bucket, Key=key)
    assert head["ContentType"] == "image/jpeg"
    assert head["ContentLength"] == len(JPEG)
    other = s3_bucket.client.head_object(Bucket=s3_bucket.bucket, Key=collage_key("zara", "1"))
    assert other["ContentType"] == "image/png"


def test_public_urls_use_the_configured_base(s3_bucket: S3Bucket) -> None:
    """Public URLs are S3_PUBLIC_BASE_URL plus the quoted key, and map back to the key."""
    config = Config.from_env(s3_bucket.env(S3_PUBLIC_BASE_URL="https://cdn.example.test/img/"))
    store = open_object_store(object_store_settings(config))
    try:
        assert isinstance(store, S3ObjectStore)
        key = original_key("zara", "a b/é", 2)
        url = store.put(key, JPEG, "image/jpeg")
        assert url == "https://cdn.example.test/img/originals/zara/a~20b~2F~C3~A9/2.jpg"
        assert store.key_for_url(url) == key
        assert store.get(store.key_for_url(url)) == JPEG
    finally:
        store.close()


def test_default_public_url_is_endpoint_and_bucket(s3_bucket: S3Bucket) -> None:
    """Without S3_PUBLIC_BASE_URL, objects are addressed path-style under the endpoint."""
    store = open_object_store(object_store_settings(Config.from_env(s3_bucket.env())))
    try:
        url = store.public_url(collage_key("zara", "7"))
        assert url == f"{s3_bucket.endpoint}/{s3_bucket.bucket}/collages/zara/7.jpg"
    finally:
        store.close()


@pytest.mark.parametrize(
    "url",
    [
        "https://elsewhere.test/originals/zara/1/1.jpg",
        "http://127.0.0.1:1/other-bucket/collages/zara/1.jpg",
        "{base}/collages/zara/1.jpg?x=1",
        "{base}/collages/zara/%2E%2E/1.jpg",
        "{base}/collages/zara/a%7Eb.jpg",
        "{base}/",
    ],
)
def test_foreign_urls_are_product_errors(
    store: S3ObjectStore, s3_bucket: S3Bucket, url: str
) -> None:
    """A URL this store did not make (other host, query, '..', other quoting) fails the product."""
    with pytest.raises(ProductError):
        store.key_for_url(url.format(base=f"{s3_bucket.endpoint}/{s3_bucket.bucket}"))


def _assert_no_credentials(error: BaseException, *secrets: str) -> None:
    for text in (str(error), repr(error)):
        for secret in secrets:
            assert secret not in text


@pytest.mark.parametrize("wrong", ["secret", "access"])
def test_wrong_keys_are_an_outage_without_secrets(s3_bucket: S3Bucket, wrong: str) -> None:
    """Refused credentials stop the batch, and neither key appears in the message or repr."""
    access = "wrong-access-key-42" if wrong == "access" else s3_bucket.access_key
    secret = "wrong-secret-key-42" if wrong == "secret" else s3_bucket.secret_key
    store = _store(s3_bucket, access_key=access, secret_key=secret)
    try:
        for call in (
            lambda: store.put(original_key("zara", "1", 1), JPEG, "image/jpeg"),
            lambda: store.get(original_key("zara", "1", 1)),
            lambda: store.exists(original_key("zara", "1", 1)),
            lambda: store.delete_prefix("originals/zara/1/"),
        ):
            with pytest.raises(ObjectStoreUnavailableError, match="credentials") as caught:
                call()
            _assert_no_credentials(caught.value, access, secret, "originals/zara/1")
        _assert_no_credentials(ValueError(repr(store)), access, secret)
    finally:
        store.close()


def test_endpoint_down_is_a_fast_outage(s3_bucket: S3Bucket, s3_down: str) -> None:
    """An endpoint that refuses connections is an outage within the bounded retries (seconds)."""
    store = _store(s3_bucket, endpoint=s3_down)
    try:
        started = time.monotonic()
        with pytest.raises(ObjectStoreUnavailableError, match="cannot connect") as caught:
            store.put(original_key("zara", "1", 1), JPEG, "image/jpeg")
        assert time.monotonic() - started < 5
        _assert_no_credentials(caught.value, s3_bucket.secret_key, "originals/zara/1")
        assert isinstance(caught.value.__cause__, botocore.exceptions.EndpointConnectionError)
    finally:
        store.close()


def test_silent_endpoint_times_out(s3_bucket: S3Bucket) -> None:
    """An endpoint that accepts connections but never answers is an outage after read_timeout."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        store = _store(s3_bucket, endpoint=endpoint, read_timeout=0.3, max_attempts=1)
        try:
            started = time.monotonic()
            with pytest.raises(ObjectStoreUnavailableError, match="timed out"):
                store.get(original_key("zara", "1", 1))
            assert time.monotonic() - started < 3
        finally:
            store.close()


def test_missing_bucket_is_an_outage(s3_bucket: S3Bucket) -> None:
    """A missing bucket stops the batch on every operation: it is not a product's fault."""
    store = _store(s3_bucket, name="no-such-bucket-here")
    try:
        for call in (
            lambda: store.put(original_key("zara", "1", 1), JPEG, "image/jpeg"),
            lambda: store.get(original_key("zara", "1", 1)),
            lambda: store.exists(original_key("zara", "1", 1)),
        ):
            with pytest.raises(ObjectStoreUnavailableError, match="bucket"):
                call()
    finally:
        store.close()


def test_missing_object_is_a_product_error(store: S3ObjectStore) -> None:
    """A key with nothing stored fails the product, and exists says False without an error."""
    key = original_key("zara", "gone", 1)
    assert not store.exists(key)
    with pytest.raises(ProductError, match="does not exist") as caught:
        store.get(key)
    assert "gone" not in str(caught.value)


def test_unsafe_key_never_reaches_the_bucket(store: S3ObjectStore) -> None:
    """A hand-made key with '..' or control characters is refused before any request."""
    for key in ("originals/../x.jpg", "a\x00b", "", "/abs.jpg"):
        with pytest.raises(ProductError, match="unsafe"):
            store.put(key, JPEG, "image/jpeg")


def test_proxy_environment_is_ignored(
    s3_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch, s3_down: str
) -> None:
    """Uploads go straight to S3 even when HTTP(S)_PROXY names a proxy (here a dead one)."""
    for name in _PROXY_VARIABLES:
        monkeypatch.setenv(name, s3_down)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    # The control: a client that honours the environment cannot reach S3 through it.
    control = botocore_env_client(s3_bucket)
    try:
        with pytest.raises(botocore.exceptions.ProxyConnectionError):
            control.list_objects_v2(Bucket=s3_bucket.bucket)
    finally:
        control.close()
    store = open_object_store(object_store_settings(Config.from_env(s3_bucket.env())))
    try:
        key = original_key("zara", "1", 1)
        store.put(key, JPEG, "image/jpeg")
        assert store.get(key) == JPEG
    finally:
        store.close()


def botocore_env_client(bucket: S3Bucket) -> Any:
    """A boto3 client with botocore's default proxy handling (from the environment)."""
    return boto3.session.Session().client(
        "s3",
        endpoint_url=bucket.endpoint,
        aws_access_key_id=bucket.access_key,
        aws_secret_access_key=bucket.secret_key,
        region_name="us-east-1",
        config=botocore.config.Config(retries={"max_attempts": 1}, connect_timeout=1),
    )


def test_client_is_bounded(store: S3ObjectStore) -> None:
    """The client uses path-style addressing, finite timeouts, bounded retries and no proxy."""
    config: Any = store._client.meta.config
    assert config.s3 == {"addressing_style": "path"}
    assert config.proxies == {}
    assert 0 < config.connect_timeout <= 10
    assert 0 < config.read_timeout <= 60
    assert config.retries == {"total_max_attempts": 3, "mode": "standard"}


def test_s3_going_down_mid_run(s3_factory: Callable[[], SeaweedS3], tmp_path: Path) -> None:
    """A store that worked becomes an outage (not a product error) once the server stops."""
    server = s3_factory()
    name = server.create_bucket()
    store = open_object_store(
        object_store_settings(
            Config.from_env(
                {
                    "S3_ENDPOINT": server.endpoint,
                    "S3_ACCESS_KEY": server.access_key,
                    "S3_SECRET_KEY": server.secret_key,
                    "S3_BUCKET": name,
                }
            )
        )
    )
    try:
        key = original_key("zara", "1", 1)
        store.put(key, JPEG, "image/jpeg")
        server.stop()
        with pytest.raises(ObjectStoreUnavailableError):
            store.get(key)
        with pytest.raises(ObjectStoreUnavailableError):
            store.put(key, JPEG, "image/jpeg")
    finally:
        store.close()


def test_config_selects_the_store(tmp_path: Path, s3_bucket: S3Bucket) -> None:
    """http(s) endpoints give S3; file:// and OBJECT_STORE_DIR the folder store; none: refused."""
    with pytest.raises(ConfigError, match="OBJECT_STORE_DIR"):
        open_object_store(object_store_settings(Config.from_env({"DATA_DIR": str(tmp_path)})))
    embedded = open_object_store(
        object_store_settings(Config.from_env({"OBJECT_STORE_DIR": str(tmp_path / "objects")}))
    )
    assert isinstance(embedded, FileObjectStore)
    assert embedded.root == (tmp_path / "objects" / "unde-images").resolve()
    assert embedded.public_url("a/b.jpg") == (tmp_path / "objects/unde-images/a/b.jpg").as_uri()
    folder = open_object_store(
        object_store_settings(
            Config.from_env({"S3_ENDPOINT": (tmp_path / "s3").as_uri(), "S3_BUCKET": "cat"})
        )
    )
    assert isinstance(folder, FileObjectStore)
    assert folder.root == (tmp_path / "s3" / "cat").resolve()
    url = folder.put("collages/zara/1.jpg", b"x", "image/jpeg")
    assert url == (tmp_path / "s3/cat/collages/zara/1.jpg").as_uri()
    assert (tmp_path / "s3/cat/collages/zara/1.jpg").read_bytes() == b"x"
    remote = open_object_store(object_store_settings(Config.from_env(s3_bucket.env())))
    assert isinstance(remote, S3ObjectStore)
    remote.close()


def test_s3_endpoint_needs_both_keys() -> None:
    """An http(s) endpoint without S3_ACCESS_KEY or S3_SECRET_KEY is a ConfigError naming it."""
    with pytest.raises(ConfigError, match="S3_ACCESS_KEY"):
        s3_settings(Config.from_env({"S3_ENDPOINT": "http://127.0.0.1:9"}))
    with pytest.raises(ConfigError, match="S3_SECRET_KEY"):
        s3_settings(Config.from_env({"S3_ENDPOINT": "http://127.0.0.1:9", "S3_ACCESS_KEY": "a"}))


def test_resources_build_one_store_and_close_it(s3_bucket: S3Bucket) -> None:
    """Resources.object_store builds the S3 store once from the config, closed with the rest."""
    resources = Resources(Config.from_env(s3_bucket.env()), {})
    store = resources.object_store()
    assert store is resources.object_store()
    assert isinstance(store, S3ObjectStore)
    store.put(collage_key("zara", "1"), JPEG, "image/jpeg")
    resources.close()
    assert "***" not in repr(store)
    assert s3_bucket.secret_key not in repr(store)


def test_public_url_is_the_object_address(store: S3ObjectStore, s3_bucket: S3Bucket) -> None:
    """The default public URL is the object's real path-style address (fetched here signed)."""
    key = original_key("zara", "9", 1)
    store.put(key, JPEG, "image/jpeg")
    signed = make_client(s3_bucket.endpoint).generate_presigned_url(
        "get_object", Params={"Bucket": s3_bucket.bucket, "Key": key}
    )
    assert signed.startswith(store.public_url(key) + "?")
    with urllib3.PoolManager() as http:
        answer = http.request("GET", signed)
    assert answer.status == 200
    assert answer.data == JPEG
