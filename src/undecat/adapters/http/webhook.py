"""POST one JSON alert to ``FAILURE_WEBHOOK_URL`` (Slack-style ``{"text": ...}``)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import urllib3

from undecat.errors import RemoteServiceError
from undecat.redact import Secret, redact_text, redact_url
from undecat.text import one_line

__all__ = ["post_alert"]


def post_alert(url: Secret, payload: dict[str, Any], *, timeout: float = 10.0) -> None:
    """Send ``payload``; RemoteServiceError (with the URL redacted) when it is not accepted."""
    shown = redact_url(url.reveal())
    parts = urlsplit(url.reveal())
    secrets = (url.reveal(), parts.query, parts.path, parts.password or "")
    try:
        answer = urllib3.request(
            "POST",
            url.reveal(),
            body=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
            timeout=urllib3.Timeout(total=timeout),
            retries=False,  # urllib3 logs each retry with the full path (a token, for Slack)
        )
    except urllib3.exceptions.HTTPError as exc:
        message = one_line(redact_text(str(exc), secrets))
        raise RemoteServiceError(
            f"FAILURE_WEBHOOK_URL {shown} cannot be reached ({message}): check the URL"
        ) from exc
    if not 200 <= answer.status < 300:
        raise RemoteServiceError(
            f"FAILURE_WEBHOOK_URL {shown} answered HTTP {answer.status}:"
            f" {one_line(answer.data.decode('utf-8', 'replace'))}"
        )
