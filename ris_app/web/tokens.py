"""Named bearer tokens of the REST API: made, listed, revoked (the command line) and
checked (every API request). No Flask here: `orthanc-ris create-token` uses it too."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from ris_app.clock import utcnow
from ris_app.config import Config
from ris_app.db import WRITER, begin_write
from ris_app.model import API_ROLES, ApiToken

# last_used_at is a hint for operators, not an audit trail: one write a minute per token
# keeps a busy integrator from writing on every request.
TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class Caller:
    """Who sent an API request: the token's name and its role."""

    name: str
    role: str


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(s: Session, name: str, role: str) -> str:
    """Store a new token named `name` with `role` and return its secret (shown once)."""
    if role not in API_ROLES:
        raise ValueError(f"role must be one of {', '.join(API_ROLES)}")
    name = name.strip()
    if not name or len(name) > 64:
        raise ValueError("a token needs a name of 1 to 64 characters")
    if s.scalar(select(ApiToken).where(ApiToken.name == name)) is not None:
        raise ValueError(f"a token named {name!r} exists already (revoke it, or choose another name)")
    secret = secrets.token_urlsafe(32)
    s.add(ApiToken(name=name, role=role, secret_sha256=secret_hash(secret)))
    return secret


def list_tokens(s: Session) -> list[ApiToken]:
    return list(s.scalars(select(ApiToken).order_by(ApiToken.name)))


def revoke_token(s: Session, name: str) -> bool:
    """Revoke the token `name`; False when there is no such live token."""
    row = s.scalar(select(ApiToken).where(ApiToken.name == name, ApiToken.revoked_at.is_(None)))
    if row is None:
        return False
    row.revoked_at = utcnow()
    return True


def _same(sent: str, expected: str) -> bool:
    # An empty setting never matches: an empty token file must not open the API.
    return bool(expected) and hmac.compare_digest(sent.encode(), expected.encode())


def identify(s: Session, cfg: Config, sent: str) -> Caller | None:
    """The caller presenting the bearer secret `sent`, or None when it is no live token.
    ORTHANC_RIS_API_TOKEN is the bootstrap admin token, ORTHANC_RIS_PLUGIN_TOKEN the
    Orthanc plugin's; every other token lives in the api_token table."""
    if not sent:
        return None
    if _same(sent, cfg.api_token):
        return Caller("ORTHANC_RIS_API_TOKEN", "admin")
    if _same(sent, cfg.plugin_token):
        return Caller("orthanc-plugin", "plugin")
    row = s.scalar(select(ApiToken).where(ApiToken.secret_sha256 == secret_hash(sent)))
    if row is None or row.revoked_at is not None:
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > TOUCH_EVERY:
        writer = bool(s.info.get(WRITER))
        row.last_used_at = now
        s.commit()
        if writer:  # the request's next transaction is a writer too (a POST's booking, ...)
            begin_write(s)
    return Caller(row.name, row.role)
