"""Configuration: the document's variable names, one clear error per bad value, no leaks."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from undecat.config import Config
from undecat.errors import ConfigError
from undecat.redact import Secret, redact_text, redact_url, secret_values

DOCUMENT_ENV = {
    "STAGING_DB_URL": "postgresql://downloader:db-pass-1@localhost:6432/unde_staging",
    "PRODUCTION_DB_URL": "postgresql://undeuser:db-pass-2@localhost:6432/unde_main",
    "PROXY_URL": "http://brd-customer-zone-zara:proxy-pass-3@localhost:33335",
    "S3_ENDPOINT": "http://127.0.0.1:8333",
    "S3_ACCESS_KEY": "access-key-4",
    "S3_SECRET_KEY": "secret-key-5",
    "S3_BUCKET": "unde-images",
    "DOWNLOAD_TIMEOUT": "30",
    "MAX_RETRIES": "3",
    "BATCH_SIZE": "200",
    "CONCURRENT_DOWNLOADS": "10",
    "APIFY_TOKEN": "apify-token-6",
    "XIMILAR_API_TOKEN": "ximilar-token-7",
    "XIMILAR_COLLECTION_ID": "collection-8",
    "XIMILAR_API_URL": "https://api.ximilar.com",
    "XIMILAR_RATE_LIMIT": "10",
    "COLLAGE_QUALITY": "95",
    "ZARA_USER_AGENT": "ZaraApp/15.10.0",
    "DUBAI_ZARA_STORES": "1234, 5678",
}
SECRETS = (
    "db-pass-1",
    "db-pass-2",
    "proxy-pass-3",
    "access-key-4",
    "secret-key-5",
    "apify-token-6",
    "ximilar-token-7",
    "collection-8",
)


def test_document_variables_are_read_with_their_names() -> None:
    """Every variable of the document's .env blocks lands in the config."""
    config = Config.from_env(DOCUMENT_ENV)
    assert config.staging_db_url is not None
    assert config.staging_db_url.reveal() == DOCUMENT_ENV["STAGING_DB_URL"]
    assert config.download_timeout == 30.0
    assert (config.max_retries, config.batch_size, config.concurrent_downloads) == (3, 200, 10)
    assert config.s3_bucket == "unde-images"
    assert config.ximilar_rate_limit == 10.0
    assert config.collage_quality == 95
    assert config.dubai_zara_stores == (1234, 5678)
    assert config.apify_tasks["zara"] == "z1psVOTyIKFdU5N9n"


def test_defaults_point_at_localhost_or_embedded_services() -> None:
    """With an empty environment nothing points at a production host."""
    config = Config.from_env({})
    assert config.staging_db_url is None
    assert config.s3_endpoint is None  # the filesystem store
    assert config.public_base_url().startswith("file://")
    assert config.backoff_schedule == (5.0, 15.0, 45.0)
    assert (config.download_delay_min, config.download_delay_max) == (0.5, 2.0)
    assert config.data_dir == Path("data")


def test_repr_never_shows_a_secret() -> None:
    """repr() and str() of the config show no password, token or key."""
    config = Config.from_env(DOCUMENT_ENV)
    shown = repr(config) + str(config)
    for secret in SECRETS:
        assert secret not in shown
    assert "downloader:***@localhost" in shown


def test_secret_values_lists_every_secret_for_scrubbing() -> None:
    """secret_values finds the passwords inside URLs as well as the plain secrets."""
    values = secret_values(Config.from_env(DOCUMENT_ENV))
    for secret in SECRETS:
        assert secret in values
    assert redact_text("proxy said proxy-pass-3 is wrong", values) == "proxy said *** is wrong"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("STAGING_DB_URL", "http://x/y", "STAGING_DB_URL must start with postgresql://"),
        ("PROXY_URL", "socks5://u:p@h:1", "PROXY_URL must start with http:// or https://"),
        ("PROXY_URL", "http://u:pw@h:99999999", "PROXY_URL is not a valid URL"),
        ("S3_ENDPOINT", "ftp://h", "S3_ENDPOINT must start with"),
        ("DOWNLOAD_TIMEOUT", "thirty", "DOWNLOAD_TIMEOUT must be a number, got 'thirty'"),
        ("MAX_RETRIES", "2.5", "MAX_RETRIES must be a whole number"),
        ("BATCH_SIZE", "0", "BATCH_SIZE must be at least 1"),
        ("COLLAGE_QUALITY", "101", "COLLAGE_QUALITY must be at most 100"),
        ("COLLAGE_WORKERS", "0", "COLLAGE_WORKERS must be at least 1"),
        ("COLLAGE_WORKERS", "two", "COLLAGE_WORKERS must be a whole number"),
        ("BACKOFF_SCHEDULE", "5,x,45", "BACKOFF_SCHEDULE must be comma-separated seconds"),
        ("DUBAI_ZARA_STORES", "PLACEHOLDER_STORE_IDS", "DUBAI_ZARA_STORES still holds the"),
        ("DUBAI_ZARA_STORES", "1236,abc", "DUBAI_ZARA_STORES must be comma-separated"),
        ("DUBAI_ZARA_STORES", "1236,-4", "DUBAI_ZARA_STORES must be comma-separated positive"),
        ("AVAILABILITY_DELAY_MAX", "1", "AVAILABILITY_DELAY_MAX (1.0) must not be below"),
        ("AVAILABILITY_MAX_BLOCKS", "0", "AVAILABILITY_MAX_BLOCKS must be at least 1"),
        ("AVAILABILITY_RETENTION_DAYS", "x", "AVAILABILITY_RETENTION_DAYS must be a whole number"),
        ("ZARA_BASE_URL", "www.zara.com", "ZARA_BASE_URL must start with http:// or https://"),
        ("PROXY_CA_BUNDLE", "/no/such/ca.pem", "PROXY_CA_BUNDLE points at '/no/such/ca.pem'"),
        (
            "XIMILAR_API_URL",
            "api.ximilar.com",
            "XIMILAR_API_URL must start with http:// or https://",
        ),
    ],
)
def test_a_malformed_value_is_one_error_naming_the_variable(
    name: str, value: str, message: str
) -> None:
    """Each malformed value raises ConfigError naming its variable."""
    with pytest.raises(ConfigError) as caught:
        Config.from_env({name: value})
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_password_in_a_malformed_url_is_not_echoed() -> None:
    """The error about a malformed URL masks the password in it."""
    with pytest.raises(ConfigError) as caught:
        Config.from_env({"PROXY_URL": "http://user:hunter2@h:notaport"})
    assert "hunter2" not in str(caught.value)


def test_delay_max_below_min_is_refused() -> None:
    """DOWNLOAD_DELAY_MAX below DOWNLOAD_DELAY_MIN is a configuration error."""
    with pytest.raises(ConfigError, match="DOWNLOAD_DELAY_MAX"):
        Config.from_env({"DOWNLOAD_DELAY_MIN": "3", "DOWNLOAD_DELAY_MAX": "1"})


def test_brand_task_ids_come_from_apify_task_variables() -> None:
    """APIFY_TASK_<BRAND> sets a brand's task; Zara keeps the document's id by default."""
    config = Config.from_env({"APIFY_TASK_BERSHKA": "abcDEF123", "APIFY_TASK_ZARA": "other"})
    assert config.apify_tasks == {"zara": "other", "bershka": "abcDEF123"}


@given(
    user=st.from_regex(r"[a-z][a-z0-9_-]{0,12}", fullmatch=True),
    password=st.from_regex(r"[A-Za-z0-9_.~!$&'()*+,;=-]{3,20}", fullmatch=True),
)
def test_redact_url_hides_any_password(user: str, password: str) -> None:
    """Whatever the password, redact_url keeps the user and host and drops the password."""
    url = f"http://{user}:{password}@proxy.example:8080/path"
    shown = redact_url(url)
    assert shown == f"http://{user}:***@proxy.example:8080/path"
    assert repr(Secret(password)) == "Secret('***')"


@pytest.mark.parametrize("odd", ["p/ss", "p#ss", "p?ss", "p@ss", "p ss", "p[ss"])
@pytest.mark.parametrize("name", ["PROXY_URL", "STAGING_DB_URL", "PRODUCTION_DB_URL"])
def test_unencoded_reserved_characters_in_a_password_are_refused_unechoed(
    name: str, odd: str
) -> None:
    """A password with a raw / # ? @ (or space, [) is refused, saying to percent-encode it."""
    scheme = "http" if name == "PROXY_URL" else "postgresql"
    secret = f"Zq{odd}9w"
    with pytest.raises(ConfigError) as caught:
        Config.from_env({name: f"{scheme}://user:{secret}@host.example:3128/db"})
    message = str(caught.value)
    assert message.startswith(name)
    assert "percent-encoded" in message
    for part in ("Zq", "9w", secret):
        assert part not in message


@pytest.mark.parametrize(
    "value", ["http://user:Zq9w@h:notaport", "http://[user:Zq9w@h", "ftp://user:Zq9w@h"]
)
def test_a_url_that_does_not_parse_is_never_echoed(value: str) -> None:
    """The error names the variable only: neither the URL nor its password is printed."""
    with pytest.raises(ConfigError) as caught:
        Config.from_env({"PROXY_URL": value})
    assert "Zq9w" not in str(caught.value)
    assert str(caught.value).startswith("PROXY_URL")


def test_percent_encoded_passwords_are_accepted_and_masked() -> None:
    """A password written with %XX escapes is accepted; repr() masks it whole."""
    config = Config.from_env({"PROXY_URL": "http://user:p%40ss%2Fw@proxy.example:3128"})
    assert "p%40ss" not in repr(config)
    assert "user:***@proxy.example:3128" in repr(config)
    assert "p@ss/w" in secret_values(config)


def test_sslpassword_in_a_dsn_is_masked() -> None:
    """sslpassword= in a database URL's query is masked in repr() and by redact_url."""
    config = Config.from_env(
        {"STAGING_DB_URL": "postgresql://u:pw1@db/x?sslmode=verify-full&sslpassword=k3y-pass"}
    )
    assert "k3y-pass" not in repr(config)
    assert "k3y-pass" not in redact_url("host=db sslpassword=k3y-pass user=u")


@pytest.mark.parametrize("name", ["XIMILAR_API_URL", "APIFY_API_URL"])
def test_api_tokens_go_only_over_https(name: str) -> None:
    """http:// API URLs are refused unless the host is loopback (tokens never in clear)."""
    with pytest.raises(ConfigError, match=f"{name} must be https://"):
        Config.from_env({name: "http://api.example.com"})
    with pytest.raises(ConfigError, match=f"{name} must be https://"):
        Config.from_env({name: "http://10.0.0.5:8080"})
    for loopback in ("http://127.0.0.1:8080", "http://[::1]:9", "http://localhost:1"):
        assert Config.from_env({name: loopback})
    assert Config.from_env({name: "https://api.example.com"})


def test_photo_host_lists_take_host_or_host_port() -> None:
    """ALLOWED_PHOTO_HOSTS / ALLOWED_PHOTO_HTTP_HOSTS take host or host:port; http is opt-in."""
    assert Config.from_env({}).allowed_photo_http_hosts == ()
    config = Config.from_env(
        {
            "ALLOWED_PHOTO_HOSTS": "cdn.example:8443, static.zara.net",
            "ALLOWED_PHOTO_HTTP_HOSTS": "img.example",
        }
    )
    assert config.allowed_photo_hosts == ("cdn.example:8443", "static.zara.net")
    assert config.allowed_photo_http_hosts == ("img.example",)
    for bad in ("http://cdn.example", "cdn.example/x", "user@cdn.example", "cdn.example:port"):
        with pytest.raises(ConfigError, match="ALLOWED_PHOTO_HTTP_HOSTS must list host names"):
            Config.from_env({"ALLOWED_PHOTO_HTTP_HOSTS": bad})
