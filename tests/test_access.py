"""Who may call which route: every rule of the app declares its roles, the API takes
bearer tokens only (a page session is not enough), and named tokens carry a role."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from ris_app.db import transaction
from ris_app.model import API_ROLES, ROLES
from ris_app.web.access import INTERNAL, access_table
from ris_app.web.tokens import create_token, revoke_token
from tests.fixtures.web import login

pytestmark = pytest.mark.db  # the token, session and failed-login tables: re-run on PostgreSQL


def _path(rule) -> str:
    """A concrete path for `rule` (any value will do: access is checked before the view)."""
    return re.sub(r"<(?:int:)?[^>]+>", lambda m: "1" if m.group(0).startswith("<int:") else "X1", rule.rule)


# The API routes anyone may call: the load balancer's probe and the API's own description.
OPEN_API = {"/api/health", "/api/openapi.json"}


def _api_rules(app):
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/") and rule.rule not in OPEN_API:
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                yield rule, method


def test_every_route_declares_who_may_call_it(app):
    table = access_table(app)
    missing = [r.rule for r in app.url_map.iter_rules() if table.get(r.endpoint) is None]
    assert not missing, f"routes without an access rule (web/access.py): {missing}"
    for rule in app.url_map.iter_rules():
        access = table[rule.endpoint]
        if rule.rule in OPEN_API:
            assert access.kind == "open"
        elif rule.rule.startswith("/api/internal/"):
            assert access.kind == "api" and set(access.roles) <= set(INTERNAL), rule.rule
        elif rule.rule.startswith("/api/"):
            assert access.kind == "api" and access.roles and set(access.roles) <= set(API_ROLES), rule.rule
        elif access.kind == "page":
            assert access.roles and set(access.roles) <= set(ROLES), rule.rule
        else:
            # The patient's confirm and cancel links: their signed token is the credential.
            assert rule.endpoint in {"static", "auth.login", "auth.logout", "appointment.appointment"}, (
                f"{rule.rule} is open"
            )


def test_a_route_without_a_rule_is_refused(app, auth):
    app.add_url_rule("/api/forgotten", "forgotten", lambda: "reached")
    app.add_url_rule("/forgotten", "forgotten_page", lambda: "reached")
    client = app.test_client()
    r = client.get("/api/forgotten", headers=auth)
    assert r.status_code == 403 and r.json["error"]["code"] == "forbidden"
    assert client.get("/forgotten").status_code == 403


def test_a_page_session_without_a_token_gets_401_on_every_api_route(app, client):
    login(app, client, "admin")
    assert client.get("/").status_code == 200  # the page session works
    rules = list(_api_rules(app))
    assert len(rules) > 30
    for rule, method in rules:
        r = client.open(_path(rule), method=method, json={})
        assert r.status_code == 401, f"{method} {rule.rule} answered {r.status_code} to a page session"


def _token(app, name, role):
    with transaction(app.extensions["ris_sessions"]) as s:
        return create_token(s, name, role)


def test_named_tokens_carry_their_role(app, client):
    integrator = {"Authorization": f"Bearer {_token(app, 'ehr', 'integrator')}"}
    plugin = {"Authorization": f"Bearer {_token(app, 'orthanc', 'plugin')}"}
    assert client.get("/api/stations", headers=integrator).status_code == 200
    assert client.post("/api/stations", headers=integrator, json={}).status_code == 403
    r = client.post("/api/internal/feed-status", headers=integrator, json={})
    assert r.status_code == 403 and r.json["error"]["code"] == "forbidden"
    assert client.get("/api/stations", headers=plugin).status_code == 403
    assert client.post("/api/internal/feed-status", headers=plugin, json={"cursor": 1}).status_code != 403


def test_the_configured_plugin_token_reaches_only_internal_routes(app, client):
    plugin = {"Authorization": f"Bearer {app.config['RIS'].plugin_token}"}
    assert app.config["RIS"].plugin_token
    assert client.get("/api/stations", headers=plugin).status_code == 403
    assert client.post("/api/internal/feed-status", headers=plugin, json={"cursor": 1}).status_code != 403


def test_a_revoked_or_unknown_token_gets_401(app, client):
    secret = _token(app, "old", "integrator")
    headers = {"Authorization": f"Bearer {secret}"}
    assert client.get("/api/stations", headers=headers).status_code == 200
    with transaction(app.extensions["ris_sessions"]) as s:
        assert revoke_token(s, "old")
    assert client.get("/api/stations", headers=headers).status_code == 401
    for value in ("Bearer ", "Bearer wrong", "Basic Zm9vOmJhcg==", ""):
        assert client.get("/api/stations", headers={"Authorization": value}).status_code == 401


def test_an_empty_token_file_refuses_to_start(tmp_path):
    from ris_app.config import Config

    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "api-token").write_text("\n")
    with pytest.raises(ValueError, match="empty"):
        Config.from_env({"ORTHANC_RIS_HOME": str(tmp_path)})


def test_token_commands(config, monkeypatch):
    from ris_app.ops.cli import main

    monkeypatch.setenv("ORTHANC_RIS_HOME", str(config.home))
    monkeypatch.setenv("ORTHANC_RIS_DATABASE_URL", config.database_url)
    runner = CliRunner()
    made = runner.invoke(main, ["create-token", "ehr", "--role", "integrator"])
    assert made.exit_code == 0, made.output
    secret = made.stdout.strip().splitlines()[-1]
    assert len(secret) >= 40
    assert runner.invoke(main, ["create-token", "ehr", "--role", "admin"]).exit_code != 0
    listed = runner.invoke(main, ["list-tokens"])
    assert "ehr\tintegrator" in listed.output and "active" in listed.output and secret not in listed.output
    assert runner.invoke(main, ["revoke-token", "ehr"]).exit_code == 0
    assert "revoked" in runner.invoke(main, ["list-tokens"]).output
    assert runner.invoke(main, ["revoke-token", "ehr"]).exit_code != 0


def test_the_audit_trail_is_for_admins_only(app):
    """Who saw what is itself patient data: the API, the pages and the export take admins."""
    table = access_table(app)
    audit = {e: a for e, a in table.items() if e.startswith(("audit.", "audit_api."))}
    assert set(audit) == {"audit_api.get_audit", "audit.audit_page", "audit.audit_csv", "audit.patient_access_page"}
    assert all(a.roles == ("admin",) for a in audit.values())


def test_the_calendar_is_for_clerks_and_admins(app):
    """The front desk's calendar, waiting list and moves: declared for the desk, so every
    other role is refused (the pages' own test checks the refusals)."""
    table = access_table(app)
    calendar = {e: a for e, a in table.items() if e.startswith("calendar.")}
    assert set(calendar) == {
        "calendar.day_page",
        "calendar.week_page",
        "calendar.waiting_page",
        "calendar.reschedule_page",
    }
    assert all((a.kind, a.roles) == ("page", ("clerk", "admin")) for a in calendar.values())


def test_setup_is_for_admins_and_clashes_for_the_front_desk(app):
    """Stations, hours, blocks and the catalog change what every clerk can book: admins
    only. Clerks resolve booking clashes."""
    table = access_table(app)
    setup = {e: a for e, a in table.items() if e.startswith("setup.")}
    assert set(setup) == {
        "setup.stations",
        "setup.station",
        "setup.hours",
        "setup.add_block",
        "setup.delete_block",
        "setup.procedures",
        "setup.catalog",
        "setup.procedure",
    }
    assert all(a.kind == "page" and a.roles == ("admin",) for a in setup.values())
    clashes = {e: a for e, a in table.items() if e.startswith("clashes.")}
    assert set(clashes) == {"clashes.clashes_page", "clashes.keep", "clashes.reschedule"}
    assert all(a.kind == "page" and a.roles == ("clerk", "admin") for a in clashes.values())
