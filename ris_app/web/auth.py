"""Logins with roles for the pages, their CSRF tokens and safe redirects (the API's
bearer tokens and the registry of who may call which route: web/access.py)."""

from __future__ import annotations

import functools
import hmac
import logging
import secrets
from datetime import timedelta
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash

from ris_app.audit.trail import Who
from ris_app.db import begin_write
from ris_app.model import ROLES, User
from ris_app.model.audit import REFUSED
from ris_app.web import audit, commit, db, login_guard, read_mostly, settings
from ris_app.web.access import declare, open_route

log = logging.getLogger(__name__)
bp = Blueprint("auth", __name__)


def create_user(s, username: str, password: str, role: str, full_name: str = "") -> User:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if len(password) < 8:
        raise ValueError("password must have at least 8 characters")
    existing = s.scalar(select(User).where(User.username == username))
    if existing is not None:
        existing.password_hash = generate_password_hash(password)
        existing.role = role
        existing.full_name = full_name or existing.full_name
        login_guard.end_sessions_of(s, existing.id)  # a reset password ends every login
        return existing
    user = User(username=username, password_hash=generate_password_hash(password), role=role, full_name=full_name)
    s.add(user)
    return user


def current_user() -> User | None:
    """The user of the request's login session, checked against its server-side row."""
    if "user" not in g:
        cfg = settings()
        # A live page's own refresh (static/live.js) must not keep an unattended screen
        # logged in: only what a person does counts against the idle timeout.
        person = request.headers.get("X-Requested-With") != "live.js"
        g.user = login_guard.session_user(
            db(), session.get("sid"), idle=timedelta(minutes=cfg.session_idle_minutes), touch=person
        )
        if g.user is None and "sid" in session:
            session.clear()  # ended, expired or revoked: the cookie is of no more use
    return g.user


@functools.cache
def _dummy_hash() -> str:
    # Checked against when the user name is unknown, so that an unknown name costs the
    # same time as a wrong password and user names cannot be found by timing.
    return generate_password_hash(secrets.token_urlsafe(16))


def _route() -> str:
    # The route's pattern, not the path: paths hold accession numbers (no patient data in logs).
    return request.url_rule.rule if request.url_rule is not None else "(no route)"


def has_role(user: User | None, roles: tuple[str, ...]) -> bool:
    """Whether `user` holds one of `roles` (no roles: any user); admin holds them all."""
    return user is not None and (not roles or user.role in roles or user.role == "admin")


def forbidden(reason: str):
    """The page a logged-in user sees when the role does not allow the request."""
    return render_template("message.html", title="Not allowed", text=reason), 403


def login_required(*roles: str):
    """Pages: a logged-in user, with one of `roles` when given (admin may do everything)."""

    def deco(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            user = current_user()
            if user is None:
                # After logging in the browser comes back with a GET: only a GET target is
                # worth remembering (a form's POST URL would answer 405).
                target = request.full_path.rstrip("?") if request.method == "GET" else None
                return redirect(url_for("auth.login", next=target))
            if not has_role(user, roles):
                log.info("user %s (%s) refused %s %s", user.username, user.role, request.method, _route())
                return forbidden(f"Your role ({user.role}) may not do this; it needs {' or '.join(roles)}.")
            return view(*args, **kwargs)

        wrapper.roles = roles  # read by may(): the navigation shows only what the user may open
        return declare(wrapper, "page", tuple(dict.fromkeys((*roles, "admin"))) if roles else ROLES)

    return deco


def may(endpoint: str) -> bool:
    """Templates: whether the current user may open the page `endpoint` (hides useless links)."""
    view = current_app.view_functions.get(endpoint)
    return has_role(current_user(), getattr(view, "roles", ()))


def safe_next(target: str | None, default: str) -> str:
    """A redirect target from the request, kept only when it is a path on this site.

    Refused: `//host` and `/\\host` (browsers read both as another host), full URLs, and
    any control character or space: Werkzeug strips tab, CR and LF while writing the
    Location header, so `/\\t/evil.example` would leave as `//evil.example`."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


# ------------------------------------------------------------------ CSRF
# Page forms are authenticated by the session cookie, which a browser also sends when
# another site submits a form to us; a per-session secret in a hidden field, checked on
# every POST, proves the form came from our own pages. (The API is not concerned: it takes
# JSON, which a cross-site form cannot send.)
CSRF_FIELD = "csrf_token"


def csrf_token() -> str:
    """The session's form token, made on first use."""
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def check_csrf():
    """before_request hook of page blueprints: refuse a POST without the session's token."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return None
    sent = request.form.get(CSRF_FIELD, "")
    expected = session.get("csrf", "")
    if expected and hmac.compare_digest(sent.encode(), expected.encode()):
        return None
    log.warning("form refused: missing or wrong CSRF token on %s", _route())
    return render_template(
        "message.html",
        title="Form expired",
        text="This form was not sent from a page of this session (it may have "
        "expired after you logged in again). Go back, reload the page and "
        "send it again.",
    ), 400


bp.before_request(check_csrf)


@bp.app_context_processor
def _template_helpers():
    return {"csrf_token": csrf_token, "csrf_field": CSRF_FIELD, "may": may}


@bp.route("/login", methods=["GET", "POST"])
@read_mostly
@open_route
def login():
    from ris_app.web.navigation import home_endpoint  # the bar's module imports this one

    def target(user: User) -> str:
        # Without a page to return to, each role lands on its own first page.
        return safe_next(request.args.get("next"), url_for(home_endpoint(user)))

    if request.method == "POST":
        username = request.form.get("username", "").strip()
        password = request.form.get("password", "")
        ip = request.remote_addr or ""
        s = db()
        actor = Who(username[:64], "user", ip)
        wait = login_guard.locked_for(s, username, ip)
        if wait:
            audit.note(s, "login.failed", actor, outcome=REFUSED, detail="locked: too many failed logins")
            commit()
            # The password is not even checked while locked, and the text is the same
            # whether the name exists or not.
            log.warning("login refused while locked: user %r from %s", username[:64], ip)
            flash("Too many failed logins: wait a few minutes and try again.", "error")
            page = render_template("login.html", username=username)
            return page, 429, {"Retry-After": str(wait)}
        user = s.scalar(select(User).where(User.username == username))
        good = check_password_hash(user.password_hash if user else _dummy_hash(), password)
        # The slow hash ran in a read transaction; the writes that follow take the lock.
        s.commit()
        begin_write(s)
        if user is not None and user.active and good:
            cfg = settings()
            login_guard.record_success(s, username)
            login_guard.prune(s)
            sid = login_guard.start_session(
                s,
                user,
                lifetime=timedelta(hours=cfg.session_max_hours),
                ip=ip,
                user_agent=request.user_agent.string,
            )
            audit.note(s, "login", actor)
            commit()
            # A fresh session (and so a fresh CSRF token): nothing set before login survives.
            session.clear()
            session.permanent = True
            session["sid"] = sid
            log.info("user %s logged in", user.username)
            return redirect(target(user))
        login_guard.record_failure(s, username, ip)
        audit.note(s, "login.failed", actor, outcome=REFUSED, detail="unknown user name or wrong password")
        commit()
        log.warning("failed login: user %r from %s", username[:64], ip)
        flash("Unknown user name or wrong password.", "error")
        return render_template("login.html", username=username), 401
    if current_user() is not None:
        return redirect(target(current_user()))
    return render_template("login.html", username="")


@bp.post("/logout")
@open_route
def logout():
    """POST only (with the CSRF token), so another site cannot log the user out. The
    server-side row is revoked: a copy of the cookie is worth nothing after this."""
    user = current_user()
    login_guard.end_session(db(), session.get("sid"))
    if user is not None:
        audit.note(db(), "logout", Who(user.username, "user", request.remote_addr or ""))
    commit()
    session.clear()
    return redirect(url_for("auth.login"))
