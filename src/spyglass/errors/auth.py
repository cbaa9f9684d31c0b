"""Which project an ingest request speaks for, per Sentry's authentication rules.

The public key comes from the ``X-Sentry-Auth`` header, the ``sentry_key`` query parameter
(browser SDKs use it to avoid a CORS preflight), or the ``dsn`` in the envelope header; it
must be an active key of the project in the URL.
"""

from __future__ import annotations

from urllib.parse import urlparse

from starlette.requests import Request


class IngestAuthError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def parse_auth_header(value: str) -> dict[str, str]:
    """``Sentry sentry_key=abc, sentry_version=7`` → ``{"sentry_key": "abc", ...}``."""
    if value[:7].lower() == "sentry ":
        value = value[7:]
    fields: dict[str, str] = {}
    for part in value.split(","):
        key, sep, val = part.strip().partition("=")
        if sep:
            fields[key.strip().lower()] = val.strip()
    return fields


def public_key_of(request: Request, envelope_dsn: str | None = None) -> str:
    header = request.headers.get("x-sentry-auth") or ""
    if not header and request.headers.get("authorization", "")[:7].lower() == "sentry ":
        header = request.headers["authorization"]
    key = parse_auth_header(header).get("sentry_key") if header else None
    key = key or request.query_params.get("sentry_key")
    if not key and envelope_dsn:
        key = urlparse(envelope_dsn).username
    if not key:
        raise IngestAuthError(401, "missing authentication: send X-Sentry-Auth with sentry_key, "
                                   "or ?sentry_key=")
    return key
