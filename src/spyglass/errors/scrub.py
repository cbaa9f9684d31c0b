"""Scrubbing secrets and personal data from events before anything is stored.

Default rules follow what Sentry's server-side scrubbing does by default: values under keys
that look sensitive (password, secret, token, api_key, authorization, cookie ...) become
``[Filtered]``, as do credit card numbers (checked with Luhn, to spare order numbers) and
bearer/basic credentials found anywhere in strings. Each project can add sensitive field
names, declare safe field names, and drop user IP addresses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

FILTERED = "[Filtered]"

DEFAULT_SENSITIVE = (
    "password", "passwd", "pwd", "secret", "api_key", "apikey", "api-key", "access_token",
    "auth", "authorization", "credentials", "mysql_pwd", "privatekey", "private_key",
    "token", "session", "sessionid", "csrftoken", "csrf", "cookie", "set-cookie", "x-api-key",
    "x-auth-token", "jwt", "bearer", "sentry_dsn", "passphrase", "ssn", "credit_card", "card_number",
    "cvv", "iban",
)
CARD = re.compile(r"\b(?:\d[ -]?){13,19}\b")
CREDENTIAL = re.compile(r"(?i)\b(bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{8,}")
URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/@\s]+:)[^@/\s]+@")
#: Fields that hold data SDKs send about the SDK or the event itself, never user secrets.
STRUCTURAL = {"event_id", "timestamp", "received", "level", "platform", "release", "environment",
              "sdk", "fingerprint", "type", "module", "function", "filename", "abs_path",
              "lineno", "colno", "in_app", "trace_id", "span_id", "parent_span_id"}


def _luhn(digits: str) -> bool:
    total, parity = 0, len(digits) % 2
    for i, ch in enumerate(digits):
        d = ord(ch) - 48
        if i % 2 == parity:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"[ -]", "", match.group(0))
    return FILTERED if 13 <= len(digits) <= 19 and _luhn(digits) else match.group(0)


@dataclass
class ScrubRules:
    sensitive: tuple[str, ...] = DEFAULT_SENSITIVE
    safe: frozenset[str] = field(default_factory=frozenset)
    scrub_ip: bool = False

    @classmethod
    def for_project(cls, sensitive_text: str = "", safe_text: str = "", scrub_ip: bool = False) -> "ScrubRules":
        extra = tuple(x.strip().lower() for x in sensitive_text.splitlines() if x.strip())
        safe = frozenset(x.strip().lower() for x in safe_text.splitlines() if x.strip())
        return cls(DEFAULT_SENSITIVE + extra, safe, scrub_ip)

    def key_is_sensitive(self, key: str) -> bool:
        k = key.lower()
        if k in self.safe or k in STRUCTURAL:
            return False
        return any(s in k for s in self.sensitive)


def scrub_string(value: str) -> str:
    if len(value) < 8:
        return value
    if any(ch.isdigit() for ch in value):
        value = CARD.sub(_card, value)
    if "://" in value:
        value = URL_PASSWORD.sub(r"\1" + FILTERED + "@", value)
    return CREDENTIAL.sub(lambda m: f"{m.group(1)} {FILTERED}", value)


def _scrub(value: Any, rules: ScrubRules, depth: int = 0) -> Any:
    if isinstance(value, str):
        return scrub_string(value)
    if depth > 20:
        return value
    if isinstance(value, dict):
        return {
            k: (FILTERED if isinstance(k, str) and rules.key_is_sensitive(k) and v not in (None, "")
                else _scrub(v, rules, depth + 1))
            for k, v in value.items()
        }
    if isinstance(value, list):
        # [key, value] pairs (headers, tags, cookies as lists) are scrubbed by their key.
        if len(value) == 2 and isinstance(value[0], str) and rules.key_is_sensitive(value[0]):
            return [value[0], FILTERED]
        return [_scrub(v, rules, depth + 1) for v in value]
    return value


def scrub_event(event: dict[str, Any], rules: ScrubRules) -> dict[str, Any]:
    """Return a scrubbed copy of a normalized event."""
    out = _scrub(event, rules)
    request = out.get("request")
    if isinstance(request, dict):
        # Cookies are credentials whatever their names; query strings often carry tokens.
        if request.get("cookies"):
            request["cookies"] = FILTERED
    if rules.scrub_ip:
        user = out.get("user")
        if isinstance(user, dict) and "ip_address" in user:
            user["ip_address"] = None
        if isinstance(request, dict) and isinstance(request.get("env"), dict):
            request["env"].pop("REMOTE_ADDR", None)
    return out
