"""The user admin page (issue 14): list, create, disable, change role, reset password;
admins only; a change that takes rights away ends the user's sessions; the last admin
stays an admin. Real Flask app, real database, the browser's way in (CSRF, cookies)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from ris_app.model import User
from ris_app.model.audit import AuditEvent
from tests.fixtures.web import PASSWORD, csrf_token, login

pytestmark = pytest.mark.db


def _user(app, username):
    s = app.extensions["ris_sessions"]()
    try:
        return s.scalar(select(User).where(User.username == username))
    finally:
        s.close()


def _log_in(client, username, password=PASSWORD) -> int:
    """Log in through the login form; the answer's status (302: in)."""
    data = {"username": username, "password": password, "csrf_token": csrf_token(client)}
    return client.post("/login", data=data).status_code


def _admin_and(app, role):
    """A logged-in admin (client, CSRF token) and a logged-in user of `role` (client)."""
    admin, other = app.test_client(), app.test_client()
    token = login(app, admin, "admin")
    login(app, other, role)
    return admin, token, other


def _id(app, username):
    return _user(app, username).id


def test_only_admins_open_the_users_page(app):
    for role in ("clerk", "technologist", "radiologist"):
        client = app.test_client()
        login(app, client, role)
        assert client.get("/admin/users").status_code == 403
        assert client.post("/admin/users", data={"csrf_token": csrf_token(client, "/")}).status_code == 403
    admin = app.test_client()
    login(app, admin, "admin")
    page = admin.get("/admin/users").get_data(as_text=True)
    assert "clerk1" in page and "radiologist1" in page and "admin1 (you)" in page


def test_create_refuses_bad_entries_and_names_every_field(app):
    admin = app.test_client()
    token = login(app, admin, "admin")
    r = admin.post("/admin/users", data={"csrf_token": token, "username": "a b", "role": "boss", "password": "short"})
    assert r.status_code == 422
    html = r.get_data(as_text=True)
    assert "User name is required" in html and "Role must be one of" in html and "Password must have" in html
    r = admin.post(
        "/admin/users", data={"csrf_token": token, "username": "ADMIN1", "role": "clerk", "password": PASSWORD}
    )
    assert r.status_code == 422 and "is taken" in r.get_data(as_text=True)


def test_create_then_the_new_user_logs_in(app):
    admin = app.test_client()
    token = login(app, admin, "admin")
    r = admin.post(
        "/admin/users",
        data={
            "csrf_token": token,
            "username": "jo",
            "full_name": "Jo Tech",
            "role": "technologist",
            "password": PASSWORD,
        },
    )
    assert r.status_code == 302
    jo = app.test_client()
    assert _log_in(jo, "jo") == 302
    assert "Jo Tech" in jo.get("/").get_data(as_text=True)


def test_disable_ends_the_session_and_the_login(app):
    admin, token, clerk = _admin_and(app, "clerk")
    assert clerk.get("/").status_code == 200
    r = admin.post(f"/admin/users/{_id(app, 'clerk1')}", data={"csrf_token": token, "action": "disable"})
    assert r.status_code == 302
    assert clerk.get("/").status_code == 302  # back to the login page at the next click
    assert _log_in(clerk, "clerk1") != 302
    admin.post(f"/admin/users/{_id(app, 'clerk1')}", data={"csrf_token": token, "action": "enable"})
    assert _user(app, "clerk1").active


def test_role_change_applies_at_the_next_click(app):
    admin, token, other = _admin_and(app, "radiologist")
    assert other.get("/reading").status_code == 200
    uid = _id(app, "radiologist1")
    admin.post(f"/admin/users/{uid}", data={"csrf_token": token, "action": "role", "role": "clerk", "full_name": "R"})
    assert _user(app, "radiologist1").role == "clerk"
    assert other.get("/reading").status_code == 302  # the session ended: log in again, as a clerk


def test_the_last_active_admin_keeps_the_role_and_the_login(app):
    admin = app.test_client()
    token = login(app, admin, "admin")
    uid = _id(app, "admin1")
    r = admin.post(f"/admin/users/{uid}", data={"csrf_token": token, "action": "disable"}, follow_redirects=True)
    assert "last active admin" in r.get_data(as_text=True)
    r = admin.post(
        f"/admin/users/{uid}", data={"csrf_token": token, "action": "role", "role": "clerk"}, follow_redirects=True
    )
    assert "last active admin" in r.get_data(as_text=True)
    assert _user(app, "admin1").role == "admin" and _user(app, "admin1").active


def test_password_reset_ends_sessions_and_is_audited_without_the_password(app):
    admin, token, clerk = _admin_and(app, "clerk")
    uid = _id(app, "clerk1")
    r = admin.post(f"/admin/users/{uid}", data={"csrf_token": token, "action": "password", "password": "x"})
    assert r.status_code == 302 and clerk.get("/").status_code == 200  # too short: nothing changed
    admin.post(f"/admin/users/{uid}", data={"csrf_token": token, "action": "password", "password": "new pass 123"})
    assert clerk.get("/").status_code == 302
    assert _log_in(clerk, "clerk1", "new pass 123") == 302
    s = app.extensions["ris_sessions"]()
    try:
        events = list(s.scalars(select(AuditEvent).where(AuditEvent.action.like("user.%"))))
    finally:
        s.close()
    assert [(e.action, e.actor, e.detail) for e in events][-1] == ("user.update", "admin1", "user clerk1: password")
    assert all("new pass" not in (e.detail or "") for e in events)
