"""Browser login: server-side sessions, CSRF tokens and login rate limiting.

The cookie holds a random token; the database holds its SHA-256, so a leaked database does
not leak live sessions, and logging out really ends the session. Failed logins are counted
per client address and per account in the database, so the limit holds across processes.
"""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from spyglass.kernel.auth.accounts import user_by_email
from spyglass.kernel.auth.passwords import hash_password, needs_rehash, verify_password
from spyglass.kernel.auth.secrets import digest, new_session_token
from spyglass.kernel.meta.models import LoginFailure, LoginSession, User, utcnow

COOKIE_NAME = "spyglass_session"


class TooManyAttempts(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__("too many failed logins; try again later")
        self.retry_after = retry_after


@dataclass
class NewSession:
    token: str
    record: LoginSession


def _failure_keys(email: str, client: str) -> list[str]:
    return [f"ip:{client}", f"email:{email.strip().lower()}"]


def check_rate_limit(db: Session, email: str, client: str, max_failures: int, window_s: int) -> None:
    since = utcnow() - dt.timedelta(seconds=window_s)
    for key in _failure_keys(email, client):
        failures = db.scalar(
            select(func.count())
            .select_from(LoginFailure)
            .where(LoginFailure.key == key, LoginFailure.at >= since)
        )
        if (failures or 0) >= max_failures:
            raise TooManyAttempts(retry_after=window_s)


def authenticate(
    db: Session, email: str, password: str, client: str, max_failures: int, window_s: int
) -> User | None:
    """Check a login; raises :class:`TooManyAttempts` when the limit is reached."""
    check_rate_limit(db, email, client, max_failures, window_s)
    user = user_by_email(db, email)
    if not verify_password(user.password_hash if user else None, password) or user is None:
        for key in _failure_keys(email, client):
            db.add(LoginFailure(key=key))
        db.flush()
        return None
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    db.execute(delete(LoginFailure).where(LoginFailure.key == _failure_keys(email, client)[1]))
    user.last_login_at = utcnow()
    return user


def start_session(db: Session, user: User, days: int) -> NewSession:
    token = new_session_token()
    record = LoginSession(
        token_hash=digest(token),
        user_id=user.id,
        csrf_token=secrets.token_urlsafe(32),
        expires_at=utcnow() + dt.timedelta(days=days),
    )
    db.add(record)
    db.flush()
    return NewSession(token, record)


def session_for_token(db: Session, token: str) -> LoginSession | None:
    record = db.scalar(select(LoginSession).where(LoginSession.token_hash == digest(token)))
    if record is None or record.expires_at <= utcnow():
        return None
    return record


def end_session(db: Session, token: str) -> None:
    db.execute(delete(LoginSession).where(LoginSession.token_hash == digest(token)))


def csrf_matches(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected, given or "")


def purge_expired(db: Session, failure_window_s: int) -> int:
    """Housekeeping for the periodic job: drop expired sessions and old login failures."""
    now = utcnow()
    n = db.execute(delete(LoginSession).where(LoginSession.expires_at <= now)).rowcount or 0
    cutoff = now - dt.timedelta(seconds=failure_window_s)
    n += db.execute(delete(LoginFailure).where(LoginFailure.at < cutoff)).rowcount or 0
    return n
