"""Page logins: held server side (logout, idle timeout, lifetime), throttled, and never
a way off the site through `next`."""

from __future__ import annotations

import dataclasses
import logging
from datetime import timedelta

import pytest

from ris_app import create_app
from ris_app.clock import utcnow
from ris_app.db import transaction
from ris_app.viewer.app import _local_path
from ris_app.web import login_guard
from ris_app.web.auth import create_user, safe_next
from tests.fixtures.web import PASSWORD, csrf_token, login

pytestmark = pytest.mark.db  # the token, session and failed-login tables: re-run on PostgreSQL


def _later(monkeypatch, delta: timedelta) -> None:
    start = utcnow()
    monkeypatch.setattr(login_guard, "utcnow", lambda: start + delta)


def _post_login(client, username, password, next_=None):
    url = "/login" + (f"?next={next_}" if next_ else "")
    return client.post(url, data={"username": username, "password": password, "csrf_token": csrf_token(client)})


def test_logout_ends_the_session_server_side(app, client):
    token = login(app, client, "clerk")
    cookie = client.get_cookie("session").value
    assert client.get("/").status_code == 200
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    thief = app.test_client()
    thief.set_cookie("session", cookie)  # a copy taken before logout
    r = thief.get("/")
    assert r.status_code == 302 and "/login" in r.headers["Location"]


def test_an_idle_session_ends(app, client, monkeypatch):
    login(app, client, "clerk")
    _later(monkeypatch, timedelta(minutes=29))
    assert client.get("/").status_code == 200  # activity keeps it alive
    _later(monkeypatch, timedelta(minutes=29 + 31))
    assert client.get("/").status_code == 302


def test_a_live_page_refreshing_itself_does_not_keep_an_unattended_screen_logged_in(app, client, monkeypatch):
    """The order page left open polls every few seconds (static/live.js): that is no person
    at the screen, so the idle timeout still ends the session."""
    login(app, client, "clerk")
    live = {"X-Requested-With": "live.js"}
    for minutes in (10, 20, 29):
        _later(monkeypatch, timedelta(minutes=minutes))
        assert client.get("/", headers=live).status_code == 200
    _later(monkeypatch, timedelta(minutes=31))
    r = client.get("/", headers=live)
    assert r.status_code == 302 and "/login" in r.headers["Location"]


def test_a_session_ends_at_its_lifetime_however_active(config, monkeypatch):
    app = create_app(dataclasses.replace(config, session_idle_minutes=100000, session_max_hours=2))
    client = app.test_client()
    login(app, client, "clerk")
    _later(monkeypatch, timedelta(hours=1, minutes=59))
    assert client.get("/").status_code == 200
    _later(monkeypatch, timedelta(hours=2, minutes=1))
    assert client.get("/").status_code == 302
    app.extensions["ris_engine"].dispose()


def test_a_password_reset_ends_every_login(app, client):
    login(app, client, "clerk")
    with transaction(app.extensions["ris_sessions"]) as s:
        create_user(s, "clerk1", "another password", "clerk")
    assert client.get("/").status_code == 302


def test_failed_logins_are_throttled_per_user_and_logged(app, client, caplog):
    with transaction(app.extensions["ris_sessions"]) as s:
        create_user(s, "rad1", PASSWORD, "radiologist")
    caplog.set_level(logging.WARNING, logger="ris_app.web.auth")
    for _ in range(login_guard.USER_LIMIT):
        assert _post_login(client, "rad1", "wrong password").status_code == 401
    assert "failed login: user 'rad1' from 127.0.0.1" in caplog.text
    r = _post_login(client, "rad1", PASSWORD)  # the right password, but locked
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    # Another user from the same address may still log in (the address limit is higher).
    login(app, app.test_client(), "clerk")


def test_failed_logins_are_throttled_per_address(app, client):
    for i in range(login_guard.ADDRESS_LIMIT):
        assert _post_login(client, f"nobody{i}", "wrong password").status_code == 401
    with transaction(app.extensions["ris_sessions"]) as s:
        create_user(s, "clerk9", PASSWORD, "clerk")
    assert _post_login(client, "clerk9", PASSWORD).status_code == 429


def test_a_lockout_ends(app, client, monkeypatch):
    with transaction(app.extensions["ris_sessions"]) as s:
        create_user(s, "rad1", PASSWORD, "radiologist")
    for _ in range(login_guard.USER_LIMIT):
        _post_login(client, "rad1", "wrong password")
    assert _post_login(client, "rad1", PASSWORD).status_code == 429
    _later(monkeypatch, timedelta(minutes=2))
    assert _post_login(client, "rad1", PASSWORD).status_code == 302


def test_an_unknown_user_costs_a_password_check(app, client, monkeypatch):
    from ris_app.web import auth

    checked = []
    real = auth.check_password_hash
    monkeypatch.setattr(auth, "check_password_hash", lambda h, p: checked.append(h) or real(h, p))
    assert _post_login(client, "nobody", "whatever pw").status_code == 401
    assert len(checked) == 1 and checked[0].startswith(("scrypt:", "pbkdf2:"))


OFF_SITE = ["/\t/evil.example", "/\n/x", "/\r/x", "\t//evil", "/\\evil", "//evil", "https://evil", "/ /x", "/\x7f/x"]


@pytest.mark.parametrize("target", OFF_SITE)
def test_next_never_leaves_the_site(target):
    assert safe_next(target, "/home") == "/home"
    assert _local_path(target) == "/"


@pytest.mark.parametrize("target", ["/orders/A1", "/reading?x=1", "/%2F/evil"])
def test_next_keeps_paths_of_this_site(target):
    assert safe_next(target, "/home") == target
    assert _local_path(target) == target


def test_login_does_not_redirect_off_site(app, client):
    with transaction(app.extensions["ris_sessions"]) as s:
        create_user(s, "clerk1", PASSWORD, "clerk")
    r = _post_login(client, "clerk1", PASSWORD, next_="/%09/127.0.0.1:18501/x")
    assert r.status_code == 302
    assert r.headers["Location"] == "/"
    assert client.get("/login?next=/%0A/x").status_code == 302  # was a 500


def test_a_ris_logout_ends_the_viewer_session(app, client, config):
    from urllib.parse import urlsplit

    from ris_app.model import User
    from ris_app.viewer.app import create_viewer_app, viewer_login_url

    token = login(app, client, "radiologist")
    with client.session_transaction() as sess:
        sid = sess["sid"]
    with transaction(app.extensions["ris_sessions"]) as s:
        uid = s.query(User).filter_by(username="radiologist1").one().id
    viewer = create_viewer_app(config).test_client()
    url = urlsplit(viewer_login_url(config, "http://127.0.0.1/", uid, "/", login_guard.session_key(sid)))
    viewer.get(f"/ris-login?{url.query}")
    assert viewer.get("/dicom-web/studies").status_code == 502  # let through (Orthanc is not running)
    client.post("/logout", data={"csrf_token": token})
    assert viewer.get("/dicom-web/studies").status_code == 401
    # A hand-over naming no RIS login opens nothing.
    viewer2 = create_viewer_app(config).test_client()
    viewer2.get(f"/ris-login?{urlsplit(viewer_login_url(config, 'http://127.0.0.1/', uid, '/')).query}")
    assert viewer2.get("/dicom-web/studies").status_code == 401


def test_old_sessions_and_counts_are_forgotten_at_login(app, client, monkeypatch):
    from sqlalchemy import func, select

    from ris_app.model import LoginFailure, UserSession

    token = login(app, client, "clerk")
    client.post("/logout", data={"csrf_token": token})
    _post_login(client, "someone", "wrong password")
    _later(monkeypatch, timedelta(days=8))
    login(app, app.test_client(), "clerk")
    with transaction(app.extensions["ris_sessions"]) as s:
        assert s.scalar(select(func.count()).select_from(UserSession)) == 1  # only the new one
        assert s.scalar(select(func.count()).select_from(LoginFailure)) == 0
