"""Logging in to the pages from Flask's test client, the way a browser does (CSRF included)."""
from __future__ import annotations

import re

from ris_app.auth import create_user
from ris_app.db import transaction

PASSWORD = "correct horse 1"


def csrf_token(client, path: str = "/login") -> str:
    """The CSRF token of the client's session, read from a form the way a browser has it."""
    html = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, f"no CSRF field on {path}"
    return match.group(1)


def login(app, client, role: str, username: str | None = None) -> str:
    """Create a user with `role`, log in, and return the session's CSRF token."""
    username = username or f"{role}1"
    with transaction(app.extensions["ris_sessions"]) as s:
        create_user(s, username, PASSWORD, role)
    r = client.post("/login", data={"username": username, "password": PASSWORD, "csrf_token": csrf_token(client)})
    assert r.status_code == 302, r.get_data(as_text=True)
    return csrf_token(client, "/")
