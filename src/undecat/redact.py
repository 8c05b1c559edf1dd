"""Keeping secrets out of logs, stored errors and ``repr()``."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

import attrs
from attrs import AttrsInstance

__all__ = ["Secret", "redact_text", "redact_url", "secret_values"]


@attrs.frozen(repr=False)
class Secret:
    """A string that never shows itself: ``repr()`` and ``str()`` print ``'***'``.

    Call :meth:`reveal` at the one place the value is handed to a client library.
    """

    _value: str = attrs.field(alias="value")

    def reveal(self) -> str:
        """Return the secret value (for the client library that needs it, nowhere else)."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"


def redact_url(url: str) -> str:
    """Return ``url`` with any password (and query-string token) replaced by ``***``."""
    if "://" not in url:
        # A key=value connection string: mask its password=... pair.
        return _CONNINFO_PASSWORD.sub(r"\1***", url)
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{hostport}" if ":" in userinfo else f"{user}@{hostport}"
    query = re.sub(r"(?i)\b(token|key|password|secret|signature)=[^&]*", r"\1=***", parts.query)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


_CONNINFO_PASSWORD = re.compile(r"(?i)\b(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)")
_URL_CREDENTIALS = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):[^@\s/]*@", re.I
)


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove credentials from free text (an exception message, a log line).

    Passwords embedded in URLs are always masked; each of ``secrets`` (values known to be
    secret, e.g. the proxy password) is replaced wherever it appears.
    """
    text = _URL_CREDENTIALS.sub(r"\g<scheme>\g<user>:***@", text)
    text = _CONNINFO_PASSWORD.sub(r"\1***", text)
    for secret in secrets:
        if secret and len(secret) >= 3:
            text = text.replace(secret, "***")
    return text


def secret_values(obj: AttrsInstance) -> tuple[str, ...]:
    """Return the revealed value of every :class:`Secret` attribute of an attrs instance.

    URL secrets contribute their password too, so it is scrubbed even when quoted alone.
    """
    values: list[str] = []
    for field in attrs.fields(type(obj)):
        value = getattr(obj, field.name)
        if isinstance(value, Secret):
            raw = value.reveal()
            values.append(raw)
            try:
                password = urlsplit(raw).password
            except ValueError:
                password = None
            if password:
                values.append(password)
    return tuple(values)
