"""Who may call which route: every view declares it, and one registry holds the answers.

Three kinds of route:
  page  a logged-in user whose role is listed (`auth.login_required`);
  api   a bearer token whose role is listed (`api_roles`); a page session does not count;
  open  anyone (`open_route`): the login form, the health probe.

Secure by default: `install` refuses every request to a route that declared nothing, and
tests/test_access.py checks every rule of the app against `access_table`, so a new route
without a declaration fails the suite before it can ship.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

from flask import Flask, g, render_template, request

from ris_app.model import API_ROLES, ROLES
from ris_app.web import db, settings
from ris_app.web.errors import ApiError
from ris_app.web.tokens import Caller, identify

log = logging.getLogger(__name__)

# Role sets of the REST API. Admin may call everything; the plugin only what it needs.
INTEGRATOR = ("integrator", "admin")
ADMIN = ("admin",)
INTERNAL = ("plugin", "admin")
OVERBOOK = (
    "admin",
)  # may book onto time already taken, on purpose ("overbook": true)  # /api/internal/*: the Orthanc plugin's calls
ANY_PAGE_USER: tuple[str, ...] = ROLES
# Pages: who may open an order, its journey and its report. Billing checks a charge
# against them; a manager (analytics) sees numbers, no patient's record.
ORDER_READERS = ("clerk", "technologist", "radiologist", "billing")

# Flask's own endpoints, which no decorator of ours can reach.
BUILTIN = {"static": ("open", ())}


@dataclass(frozen=True)
class Access:
    kind: str  # page | api | open
    roles: tuple[str, ...]


def declare(view, kind: str, roles: tuple[str, ...]):
    """Record on `view` who may call it (read by access_table and the default refusal)."""
    view.access = Access(kind, roles)
    return view


def open_route(view):
    """Anyone may call this view (no login, no token)."""
    return declare(view, "open", ())


def _route() -> str:
    return request.url_rule.rule if request.url_rule is not None else "(no route)"


def current_caller() -> Caller | None:
    """The API caller identified by the request's bearer token (cached per request)."""
    if "caller" not in g:
        header = request.headers.get("Authorization", "")
        sent = header[7:].strip() if header[:7].lower() == "bearer " else ""
        g.caller = identify(db(), settings(), sent)
    return g.caller


def api_roles(*roles: str):
    """API views: a bearer token whose role is one of `roles`. A page session is not
    accepted: the API takes JSON from systems, and a cookie would let any page user (or a
    cross-site request riding the cookie) drive it."""
    unknown = set(roles) - set(API_ROLES)
    if not roles or unknown:
        raise ValueError(f"API roles must be among {API_ROLES}, not {sorted(unknown) or 'none'}")

    def deco(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            caller = current_caller()
            if caller is None:
                raise ApiError(401, "a valid bearer token is required")
            if caller.role not in roles:
                log.info("token %s (%s) refused %s %s", caller.name, caller.role, request.method, _route())
                raise ApiError(403, f"a token with role {' or '.join(roles)} is required")
            return view(*args, **kwargs)

        return declare(wrapper, "api", roles)

    return deco


def access_table(app: Flask) -> dict[str, Access | None]:
    """Every endpoint of `app` with its declaration (None: declared nothing, refused)."""
    table: dict[str, Access | None] = {}
    for endpoint, view in app.view_functions.items():
        if endpoint in BUILTIN:
            kind, roles = BUILTIN[endpoint]
            table[endpoint] = Access(kind, roles)
        else:
            table[endpoint] = getattr(view, "access", None)
    return table


def install(app: Flask) -> None:
    """Refuse every request to a route that declares no access rule."""

    @app.before_request
    def _refuse_undeclared():
        if request.url_rule is None or request.endpoint is None:
            return None  # 404 / 405: Flask answers
        if request.endpoint in BUILTIN or getattr(app.view_functions.get(request.endpoint), "access", None):
            return None
        log.error("refused %s %s: the route declares no access rule", request.method, _route())
        if request.path.startswith("/api/"):
            raise ApiError(403, "this route declares no access rule")
        return render_template("message.html", title="Not allowed", text="This page declares no access rule."), 403
