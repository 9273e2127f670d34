"""The user admin page: list the users of the pages, create one, change a role or name,
disable or enable a login, reset a password. Admins only.

Every change that takes rights away ends the user's open sessions (a disabled user or a
clerk who was an admin is out at the next click, not at the next login). The last active
admin can be neither disabled nor given another role: the department would lose the
only way back in short of the command line. The command line (`orthanc-ris create-user`)
stays, for the first admin of an installation.
"""

from __future__ import annotations

import logging

from flask import Blueprint, flash, redirect, render_template, request, url_for
from sqlalchemy import func, select

from ris_app.clock import site_zone, zone_name
from ris_app.model import ROLES, User, UserSession
from ris_app.web import commit, db
from ris_app.web.auth import check_csrf, create_user, current_user, login_required
from ris_app.web.forms import Form, commit_or_fail
from ris_app.web.login_guard import end_sessions_of

log = logging.getLogger(__name__)
bp = Blueprint("users", __name__)
bp.before_request(check_csrf)

USERNAME_MAX = 64
NAME_MAX = 128
LABELS = {"username": "User name", "full_name": "Full name", "role": "Role", "password": "Password"}


def _last_seen(s) -> dict[int, object]:
    rows = s.execute(select(UserSession.user_id, func.max(UserSession.last_seen_at)).group_by(UserSession.user_id))
    return dict(rows.all())


def _render(form: Form | None = None, status: int = 200):
    s = db()
    users = list(s.scalars(select(User).order_by(User.active.desc(), User.username)))
    seen = _last_seen(s)
    return render_template(
        "users.html",
        users=users,
        roles=ROLES,
        role_options=[(r, r) for r in ROLES],
        last_seen=seen,
        zone=zone_name(site_zone()),
        form=(form or Form({})).data,
        errors=(form or Form({})).errors,
        labels=LABELS,
        me=current_user(),
    ), status


def _other_active_admins(s, user: User) -> int:
    return s.scalar(
        select(func.count()).select_from(User).where(User.role == "admin", User.active.is_(True), User.id != user.id)
    )


@bp.get("/admin/users")
@login_required("admin")
def users_page():
    return _render()


@bp.post("/admin/users")
@login_required("admin")
def create_user_page():
    f = Form(request.form)
    username = f.data.get("username", "").strip()
    full_name = f.data.get("full_name", "").strip()
    role = f.data.get("role", "")
    password = f.data.get("password", "")
    if not username or len(username) > USERNAME_MAX or any(c.isspace() for c in username):
        f.fail("username", f"is required: up to {USERNAME_MAX} characters, no spaces")
    elif db().scalar(select(User.id).where(func.lower(User.username) == username.lower())) is not None:
        f.fail("username", "is taken (use Reset password to change an existing user's)")
    if len(full_name) > NAME_MAX:
        f.fail("full_name", f"is longer than {NAME_MAX} characters")
    if role not in ROLES:
        f.fail("role", f"must be one of {', '.join(ROLES)}")
    if len(password) < 8:
        f.fail("password", "must have at least 8 characters")
    if f.errors:
        return _render(f, 422)
    create_user(db(), username, password, role, full_name)
    if not commit_or_fail(f, "username"):
        return _render(f, 409)
    log.info("user %s created with role %s", username, role)
    flash(f"User {username} created ({role}).", "ok")
    return redirect(url_for("users.users_page"))


@bp.post("/admin/users/<int:user_id>")
@login_required("admin")
def update_user_page(user_id: int):
    s = db()
    user = s.get(User, user_id)
    if user is None:
        flash("No such user.", "error")
        return redirect(url_for("users.users_page"))
    action = request.form.get("action", "")
    if action == "password":
        password = request.form.get("password", "")
        if len(password) < 8:
            flash(f"{user.username}: the new password must have at least 8 characters.", "error")
            return redirect(url_for("users.users_page"))
        create_user(s, user.username, password, user.role)  # sets the hash and ends every session
        done = f"Password of {user.username} reset; their open sessions were ended."
    elif action in ("disable", "enable"):
        if action == "disable" and user.role == "admin" and not _other_active_admins(s, user):
            flash(f"{user.username} is the last active admin and cannot be disabled.", "error")
            return redirect(url_for("users.users_page"))
        user.active = action == "enable"
        if not user.active:
            end_sessions_of(s, user.id)
        done = f"{user.username} {'enabled' if user.active else 'disabled'}."
    elif action == "role":
        role = request.form.get("role", "")
        if role not in ROLES:
            flash(f"Role must be one of {', '.join(ROLES)}.", "error")
            return redirect(url_for("users.users_page"))
        if user.role == "admin" and role != "admin" and not _other_active_admins(s, user):
            flash(f"{user.username} is the last active admin and keeps that role.", "error")
            return redirect(url_for("users.users_page"))
        full_name = request.form.get("full_name", user.full_name).strip()[:NAME_MAX]
        if role != user.role:
            end_sessions_of(s, user.id)  # rights change at the next click, not the next login
        user.role, user.full_name = role, full_name
        done = f"{user.username} saved ({role})."
    else:
        flash("Unknown action.", "error")
        return redirect(url_for("users.users_page"))
    commit()
    log.info("user %s: %s", user.username, action)
    flash(done, "ok")
    return redirect(url_for("users.users_page"))


def username_of_route() -> str:
    """The audit detail of a user change: the user's login name (no patient data)."""
    user_id = request.view_args.get("user_id") if request.view_args else None
    if user_id is None:
        return f"user {request.form.get('username', '')[:USERNAME_MAX]}"
    user = db().get(User, user_id)
    return f"user {user.username if user else user_id}: {request.form.get('action', '')[:16]}"
