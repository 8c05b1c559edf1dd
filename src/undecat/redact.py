"""Keeping secrets out of logs, stored errors and ``repr()``."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import unquote

import attrs
from attrs import AttrsInstance

__all__ = [
    "RedactingFilter",
    "Secret",
    "redact_text",
    "redact_url",
    "secret_values",
    "url_userinfo",
]


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
    """Return ``url`` with its credentials and query-string tokens replaced by ``***``.

    Everything between ``://`` and the last ``@`` of the authority is masked (the user name
    is kept only when it is a plain word followed by ``:``), so a password holding an
    unencoded ``/``, ``#``, ``?`` or ``@`` is masked whole. Token parameters
    (``access_token``, ``api_key``, ``token``, ``sslpassword``, ...) are masked too. A
    key=value connection string has its ``password`` / ``sslpassword`` masked.
    """
    if "://" not in url:
        return _mask_pairs(url)
    return _QUERY_SECRET.sub(r"\g<key>***", _mask_userinfo(url))


#: Query or connection-string parameters whose value is a secret.
_SECRET_KEYS = "|".join(
    (
        "access_token|api_key|apikey|api-key|token|auth_token|key|password|passwd|pass",
        "sslpassword|secret|client_secret|signature|sig",
        "x-amz-signature|x-amz-credential|x-amz-security-token",
    )
)
_QUERY_SECRET = re.compile(rf"(?i)(?P<key>(?<=[?&;])(?:{_SECRET_KEYS})=)[^&#\s'\"]*")
_CONNINFO_PASSWORD = re.compile(
    r"(?i)(?<![\w-])((?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s'\"]+)"
)
_HEADER_SECRET = re.compile(
    r"(?i)(?P<key>\b(?:proxy-)?authorization['\"]?\s*[:=]\s*['\"]?)"
    r"(?:[A-Za-z]+[ \t]+)?[^\s'\",}]+"
)
_SCHEME = re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://")
_PLAIN_USER = re.compile(r"[A-Za-z0-9._~%-]+")


def _mask_pairs(text: str) -> str:
    return _CONNINFO_PASSWORD.sub(r"\1***", text)


def _userinfo_end(rest: str) -> int:
    """Where the userinfo of ``rest`` (what follows ``://``) ends: its last ``@``, or -1.

    An ``@`` counts only if what precedes it could be userinfo: its first ``:``, ``/``,
    ``?`` or ``#`` (if any) is a ``:``. So ``cdn/x@2x.jpg`` has none, while
    ``user:p/ss@host`` and ``user:p@ss@host`` end at the ``@`` before ``host``.
    """
    at = len(rest)
    while (at := rest.rfind("@", 0, at)) != -1:
        first = re.search(r"[:/?#]", rest[:at])
        if first is None or first.group() == ":":
            return at
    return -1


def _mask_userinfo(url: str) -> str:
    """Mask the userinfo of every ``scheme://`` in ``url`` (one URL, no whitespace)."""
    match = _SCHEME.search(url)
    if match is None:
        return url
    head, rest = url[: match.end()], url[match.end() :]
    at = _userinfo_end(rest)
    if at == -1:
        return head + rest
    userinfo = rest[:at]
    user, colon, _ = userinfo.partition(":")
    shown = f"{user}:***" if colon and _PLAIN_USER.fullmatch(user) else "***"
    return f"{head}{shown}{rest[at:]}"


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove credentials from free text (an exception message, a log line).

    Every URL's userinfo and token parameters, ``password=`` / ``sslpassword=`` pairs and
    ``Authorization`` / ``Proxy-Authorization`` header values are always masked; each of
    ``secrets`` (values known to be secret, e.g. the proxy password) is replaced wherever
    it appears.
    """
    for secret in sorted(secrets, key=len, reverse=True):
        if secret and len(secret) >= 3:
            text = text.replace(secret, "***")
    text = re.sub(r"(?i)\b[a-z][a-z0-9+.-]*://\S+", lambda m: _mask_userinfo(m.group()), text)
    text = _QUERY_SECRET.sub(r"\g<key>***", text)
    text = _HEADER_SECRET.sub(r"\g<key>***", text)
    return _mask_pairs(text)


class RedactingFilter(logging.Filter):
    """A logging filter that passes every record's text through :func:`redact_text`.

    Installed on the runners' log handler (``undecat.cli``), so a message or an exception
    that carries a URL with a password, a token parameter or an Authorization header is
    logged masked, whoever wrote it.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = tuple(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        """Replace the record's message (arguments merged) and exception text, redacted."""
        record.msg = redact_text(record.getMessage(), self.secrets)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            formatted = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact_text(formatted, self.secrets)
            record.exc_info = None
        return True


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
            password = _password_of(raw)
            if password:
                values.append(password)
                if unquote(password) != password:
                    values.append(unquote(password))
    return tuple(values)


def url_userinfo(url: str) -> str | None:
    """The userinfo of ``url`` (between ``://`` and the last ``@`` of the authority), if any."""
    match = _SCHEME.match(url)
    if match is None:
        return None
    rest = url[match.end() :]
    at = _userinfo_end(rest)
    return None if at == -1 else rest[:at]


def _password_of(url: str) -> str | None:
    """The password of a URL's userinfo (what follows its first ``:``)."""
    userinfo = url_userinfo(url)
    if userinfo is None or ":" not in userinfo:
        return None
    return userinfo.partition(":")[2] or None
