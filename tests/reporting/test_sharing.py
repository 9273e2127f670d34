"""Second-opinion share links: the rules (expiry bounds, code, lockout, revocation, only
hashes stored, audit events) on a real database, and the report page's share box."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from ris_app.clock import utcnow
from ris_app.db import transaction
from ris_app.errors import Gone, Invalid
from ris_app.model import AuditEvent, ShareLink
from ris_app.reporting import lifecycle
from ris_app.reporting.sharing import (
    DEFAULT_DAYS,
    MAX_CODE_ATTEMPTS,
    check_alive,
    create_share,
    open_with_code,
    revoke,
    state,
)
from ris_app.web.auth import create_user
from tests.reporting.test_reporting import _patient, _study

pytestmark = pytest.mark.db
MAX_DAYS = 30


@pytest.fixture
def sessions(app):
    return app.extensions["ris_sessions"]


@pytest.fixture
def study_id(sessions):
    with transaction(sessions) as s:
        for name, role in (("rad", "radiologist"), ("clerk", "clerk")):
            create_user(s, name, "password-123", role, full_name=f"Dr {name}")
        return _study(s, _patient(s)).id


def _share(sessions, study_id, **kw):
    from ris_app.model import Study, User

    with transaction(sessions) as s:
        user = s.scalar(select(User).where(User.username == "rad"))
        link, token, code = create_share(
            s,
            s.get(Study, study_id),
            user,
            recipient=kw.pop("recipient", "dr.lee@example.org"),
            max_days=MAX_DAYS,
            **kw,
        )
        return link.id, token, code


def _open(sessions, token, code):
    with transaction(sessions) as s:
        opening = open_with_code(s, token, code, "203.0.113.7")
        return opening.refused, opening.tries_left


def _events(sessions, action):
    with sessions() as s:
        return s.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)).all()


def _login(client, name):
    login = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', login).group(1)
    assert (
        client.post("/login", data={"username": name, "password": "password-123", "csrf_token": csrf}).status_code
        == 302
    )


def test_a_link_keeps_only_hashes_and_lasts_seven_days_by_default(sessions, study_id):
    before = utcnow()
    link_id, token, code = _share(sessions, study_id)
    assert len(code) == 8 and len(token) >= 40
    with sessions() as s:
        link = s.get(ShareLink, link_id)
        stored = " ".join(str(getattr(link, c.key)) for c in ShareLink.__table__.columns)
        assert token not in stored and code not in stored
        assert len(link.token_hash) == len(link.code_hash) == 64
        assert before + timedelta(days=DEFAULT_DAYS) <= link.expires_at <= utcnow() + timedelta(days=DEFAULT_DAYS)
        assert state(link) == "active"
    (event,) = _events(sessions, "share.create")
    assert (event.actor, event.actor_kind, event.resource) == ("rad", "user", "1.2.3.1")
    assert token not in event.detail and code not in event.detail


@pytest.mark.parametrize("days", [0, -1, MAX_DAYS + 1])
def test_the_validity_stays_within_the_setting(sessions, study_id, days):
    with pytest.raises(Invalid) as err:
        _share(sessions, study_id, days=days)
    assert err.value.field == "days"
    _share(sessions, study_id, days=MAX_DAYS)  # the maximum itself is allowed


def test_a_report_is_shared_only_once_signed(sessions, study_id):
    with pytest.raises(Invalid) as err:
        _share(sessions, study_id, include_report=True)
    assert err.value.field == "include_report"
    from ris_app.model import Study, User

    with transaction(sessions) as s:
        user = s.scalar(select(User).where(User.username == "rad"))
        report = lifecycle.start_report(s, s.get(Study, study_id), user)
        lifecycle.save_report(s, report, user, {"impression": "Normal."}, "sign")
    _share(sessions, study_id, include_report=True)


def test_the_right_code_opens_and_counts_each_opening(sessions, study_id):
    link_id, token, code = _share(sessions, study_id, recipient="Dr Lee, St Elsewhere")
    assert _open(sessions, token, code) == ("", 0)
    assert _open(sessions, token, code.lower()) == ("", 0)  # typed in lower case: the same code
    with sessions() as s:
        link = s.get(ShareLink, link_id)
        assert link.opened_count == 2 and link.last_opened_at is not None
    opened = _events(sessions, "share.open")
    assert [(e.actor, e.actor_kind, e.address, e.outcome) for e in opened] == [
        ("Dr Lee, St Elsewhere", "share", "203.0.113.7", "success")
    ] * 2


def test_wrong_codes_lock_the_link(sessions, study_id):
    link_id, token, code = _share(sessions, study_id)
    for tried in range(1, MAX_CODE_ATTEMPTS):
        assert _open(sessions, token, "WRONG123") == ("wrong_code", MAX_CODE_ATTEMPTS - tried)
    assert _open(sessions, token, "WRONG123") == ("locked", 0)
    assert _open(sessions, token, code)[0] == "locked"  # the right code, too late
    with sessions() as s:
        link = s.get(ShareLink, link_id)
        assert link.opened_count == 0 and state(link) == "locked"
        with pytest.raises(Gone):
            check_alive(link)
    refused = _events(sessions, "share.open")
    assert len(refused) == MAX_CODE_ATTEMPTS + 1 and {e.outcome for e in refused} == {"refused"}


def test_a_revoked_or_expired_link_is_gone(sessions, study_id):
    from ris_app.model import User

    revoked_id, revoked_token, revoked_code = _share(sessions, study_id)
    expired_id, expired_token, expired_code = _share(sessions, study_id)
    with transaction(sessions) as s:
        revoke(s, s.get(ShareLink, revoked_id), s.scalar(select(User).where(User.username == "rad")))
        s.get(ShareLink, expired_id).expires_at = utcnow() - timedelta(seconds=1)
    assert _open(sessions, revoked_token, revoked_code)[0] == "revoked"
    assert _open(sessions, expired_token, expired_code)[0] == "expired"
    assert len(_events(sessions, "share.revoke")) == 1


def test_a_radiologist_shares_from_the_report_page_and_revokes(app, client, sessions, study_id):
    _login(client, "rad")
    page = client.get(f"/reading/studies/{study_id}").get_data(as_text=True)
    assert "Second opinion" in page and "Not shared." in page
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    r = client.post(
        f"/reading/studies/{study_id}/shares", data={"recipient": "Dr Lee", "days": "40", "csrf_token": csrf}
    )
    assert r.status_code == 302  # refused: more than the maximum
    assert "between 1 and 30 days" in client.get(f"/reading/studies/{study_id}").get_data(as_text=True)
    r = client.post(
        f"/reading/studies/{study_id}/shares", data={"recipient": "Dr Lee", "days": "3", "csrf_token": csrf}
    )
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    html = r.get_data(as_text=True)
    token = re.search(r"/share/([A-Za-z0-9_-]+)\"", html).group(1)
    code = re.search(r'id="share-code"[^>]*>([A-Z0-9]{8})<', html).group(1)
    assert _open(sessions, token, code) == ("", 0)
    page = client.get(f"/reading/studies/{study_id}").get_data(as_text=True)
    assert "Shared with <strong>Dr Lee</strong>" in page and "opened 1 time, last" in page
    assert code not in page and token not in page  # shown once only
    link_id = int(re.search(r'id="revoke-(\d+)"', page).group(1))
    r = client.post(f"/reading/shares/{link_id}/revoke", data={"csrf_token": csrf}, follow_redirects=True)
    assert 'data-state="revoked"' in r.get_data(as_text=True)
    assert _open(sessions, token, code)[0] == "revoked"


def test_a_clerk_sees_the_shares_but_cannot_share(app, client, sessions, study_id):
    _share(sessions, study_id, recipient="Dr Lee")
    _login(client, "clerk")
    page = client.get(f"/reading/studies/{study_id}").get_data(as_text=True)
    assert "Dr Lee" in page and "share-form" not in page and "revoke-" not in page
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    r = client.post(f"/reading/studies/{study_id}/shares", data={"recipient": "x", "csrf_token": csrf})
    assert r.status_code == 403
    with sessions() as s:
        assert len(s.scalars(select(ShareLink)).all()) == 1
