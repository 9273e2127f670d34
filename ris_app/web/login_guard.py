"""Page logins held server side, and failed logins counted in the database.

Sessions: the cookie carries only a random secret; the `user_session` row (keyed by the
secret's SHA-256) says whether it is still good. Logout revokes the row, so a copied
cookie dies with it; an idle timeout and an absolute lifetime end forgotten logins.

Throttling: failures are counted per user name and per address in `login_failure`,
shared by every web worker. Too many for a user name locks it for a while, growing
(1, 2, 4 … 15 minutes); too many from one address locks that address for 15 minutes.
Never for good: an attacker could otherwise lock radiologists out on purpose.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, update
from sqlalchemy.orm import Session

from ris_app.clock import utcnow
from ris_app.model import LoginFailure, User, UserSession

TOUCH_EVERY = timedelta(minutes=1)  # last_seen_at is written about once a minute
WINDOW = timedelta(minutes=15)
USER_LIMIT = 5  # failures per user name in WINDOW before a lockout
ADDRESS_LIMIT = 20  # failures per address in WINDOW before a lockout
MAX_LOCK = timedelta(minutes=15)
KEEP_ENDED = timedelta(days=7)  # ended sessions kept this long (who was logged in, from where)


def _h(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def session_key(secret: str) -> str:
    """The session's row key: names the session to another part (the viewer) without
    handing over the cookie's secret."""
    return _h(secret)


def session_alive(s: Session, key: str) -> User | None:
    """The active user of the session row `key` while it is neither revoked nor past its
    lifetime (the viewer's check: reading images does not touch the RIS row, so no idle
    limit here)."""
    row = s.get(UserSession, key) if key else None
    if row is None or row.revoked_at is not None or utcnow() >= row.expires_at or not row.user.active:
        return None
    return row.user


def start_session(s: Session, user: User, *, lifetime: timedelta, ip: str, user_agent: str) -> str:
    """A new server-side session for `user`; returns the secret the cookie carries."""
    secret = secrets.token_urlsafe(32)
    now = utcnow()
    s.add(
        UserSession(
            id_hash=_h(secret),
            user_id=user.id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + lifetime,
            ip=ip[:45],
            user_agent=user_agent[:200],
        )
    )
    return secret


def session_user(s: Session, secret: str | None, *, idle: timedelta, touch: bool = True) -> User | None:
    """The active user of the session `secret`, or None when it is unknown, revoked, idle
    too long, past its lifetime, or its user was deactivated. Touches last_seen_at unless
    `touch` is false (a page refreshing itself is no sign that a person is there)."""
    if not secret:
        return None
    row = s.get(UserSession, _h(secret))
    now = utcnow()
    if row is None or row.revoked_at is not None or now >= row.expires_at or now - row.last_seen_at > idle:
        return None
    if not row.user.active:
        return None
    if touch and now - row.last_seen_at > TOUCH_EVERY:
        row.last_seen_at = now
        s.commit()
    return row.user


def end_session(s: Session, secret: str | None) -> None:
    """Revoke the session `secret` (logout)."""
    if secret:
        row = s.get(UserSession, _h(secret))
        if row is not None and row.revoked_at is None:
            row.revoked_at = utcnow()


def end_sessions_of(s: Session, user_id: int) -> None:
    """Revoke every session of a user (password or role change, deactivation)."""
    s.execute(
        update(UserSession)
        .where(UserSession.user_id == user_id, UserSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


def _keys(username: str, ip: str) -> tuple[str, str]:
    return f"u:{username.strip().lower()[:100]}", f"ip:{ip[:100]}"


def locked_for(s: Session, username: str, ip: str) -> int:
    """Seconds the user name or the address stays locked (0: may try)."""
    now = utcnow()
    waits = [
        (row.locked_until - now).total_seconds()
        for key in _keys(username, ip)
        if (row := s.get(LoginFailure, key)) is not None and row.locked_until is not None and row.locked_until > now
    ]
    return int(max(waits, default=0)) + (1 if waits else 0)


def _count(s: Session, key: str, now: datetime) -> LoginFailure:
    row = s.get(LoginFailure, key)
    if row is None:
        row = LoginFailure(key=key, window_start=now, count=0)
        s.add(row)
    elif now - row.window_start > WINDOW:
        row.window_start, row.count = now, 0
    row.count += 1
    return row


def record_failure(s: Session, username: str, ip: str) -> None:
    """Count a failed login for the user name and the address; lock either past its limit."""
    now = utcnow()
    user_key, ip_key = _keys(username, ip)
    row = _count(s, user_key, now)
    if row.count >= USER_LIMIT:
        row.locked_until = now + min(MAX_LOCK, timedelta(minutes=2 ** min(row.count - USER_LIMIT, 4)))
    row = _count(s, ip_key, now)
    if row.count >= ADDRESS_LIMIT:
        row.locked_until = now + MAX_LOCK


def record_success(s: Session, username: str) -> None:
    """A good password clears the user name's count (not the address's)."""
    row = s.get(LoginFailure, _keys(username, "")[0])
    if row is not None:
        s.delete(row)


def prune(s: Session) -> None:
    """Forget sessions ended more than KEEP_ENDED ago and failure counts no longer in
    force (run at each login: no scheduler needed, and logins are few)."""
    now = utcnow()
    s.execute(
        delete(UserSession).where(
            or_(UserSession.expires_at < now - KEEP_ENDED, UserSession.revoked_at < now - KEEP_ENDED)
        )
    )
    s.execute(
        delete(LoginFailure).where(
            LoginFailure.window_start < now - WINDOW,
            or_(LoginFailure.locked_until.is_(None), LoginFailure.locked_until < now),
        )
    )
