"""Who may do what: bearer tokens for the API, logins with roles for the pages."""
from __future__ import annotations

import functools
import hmac
import logging

from flask import Blueprint, abort, flash, g, redirect, render_template, request, session, url_for
from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash

from .errors import ApiError
from .models import ROLES, User
from .web import db, settings

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
        return existing
    user = User(username=username, password_hash=generate_password_hash(password), role=role, full_name=full_name)
    s.add(user)
    return user


def _bearer_ok() -> bool:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[7:].strip().encode(), settings().api_token.encode())


def current_user() -> User | None:
    if "user" not in g:
        uid = session.get("uid")
        g.user = db().get(User, uid) if uid else None
        if g.user is not None and not g.user.active:
            g.user = None
    return g.user


def api_auth(view):
    """API endpoints: a bearer token, or a logged-in user's session (pages' scripts)."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if not _bearer_ok() and current_user() is None:
            raise ApiError(401, "a valid bearer token is required")
        return view(*args, **kwargs)

    return wrapper


def login_required(*roles: str):
    """Pages: a logged-in user, with one of `roles` when given (admin may do everything)."""

    def deco(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            user = current_user()
            if user is None:
                return redirect(url_for("auth.login", next=request.path))
            if roles and user.role not in roles and user.role != "admin":
                abort(403)
            return view(*args, **kwargs)

        return wrapper

    return deco


@bp.route("/login", methods=["GET", "POST"])
def login():
    if request.method == "POST":
        username = request.form.get("username", "")
        password = request.form.get("password", "")
        user = db().scalar(select(User).where(User.username == username))
        if user is not None and user.active and check_password_hash(user.password_hash, password):
            session.clear()
            session["uid"] = user.id
            log.info("user %s logged in", user.username)
            target = request.args.get("next", "")
            return redirect(target if target.startswith("/") and not target.startswith("//") else url_for("pages.today"))
        log.warning("failed login")
        flash("Unknown user name or wrong password.", "error")
        return render_template("login.html"), 401
    return render_template("login.html")


@bp.route("/logout", methods=["POST", "GET"])
def logout():
    session.clear()
    return redirect(url_for("auth.login"))
