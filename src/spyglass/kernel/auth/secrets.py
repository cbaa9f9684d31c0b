"""Random tokens and their at-rest digests."""

import hashlib
import secrets

API_TOKEN_PREFIX = "spg_"


def new_api_token() -> str:
    return API_TOKEN_PREFIX + secrets.token_urlsafe(32)


def new_public_key() -> str:
    """A DSN public key: 32 hex characters, as Sentry SDKs expect."""
    return secrets.token_hex(16)


def new_session_token() -> str:
    return secrets.token_urlsafe(32)


def digest(token: str) -> str:
    """SHA-256 is right for random tokens (unlike passwords they have full entropy)."""
    return hashlib.sha256(token.encode()).hexdigest()
