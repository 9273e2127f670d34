"""The analytics pages and API: admins only, charts beside tables, CSV, the duration
proposal adopted into the catalog, and `orthanc-ris demo-data`."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from ris_app.db import transaction
from ris_app.model import Order, ProcedureCode, ReportVersion
from ris_app.web.tokens import create_token
from tests.analytics.fixture import build
from tests.fixtures.web import login

pytestmark = pytest.mark.db
THEMES = ("turnaround", "utilisation", "rates", "backlog", "health", "durations", "forecast")


@pytest.fixture
def day(app):
    with transaction(app.extensions["ris_sessions"]) as s:
        return build(s)


def _token(app, role: str) -> dict:
    with transaction(app.extensions["ris_sessions"]) as s:
        return {"Authorization": f"Bearer {create_token(s, role + '-t', role)}"}


def test_api_is_for_admin_tokens_only(app, client, auth, day):
    integrator, plugin = _token(app, "integrator"), _token(app, "plugin")
    for path in ("/api/analytics/turnaround", "/api/analytics/utilisation", "/api/analytics/forecast?modality=CT"):
        assert client.get(path).status_code == 401
        assert client.get(path, headers=integrator).status_code == 403
        assert client.get(path, headers=plugin).status_code == 403
        assert client.get(path, headers=auth).status_code == 200


def test_api_turnaround_and_utilisation(client, auth, day):
    r = client.get(f"/api/analytics/turnaround?from={day}&to={day}&modality=CT&priority=ROUTINE", headers=auth)
    stages = {s["stage"]: s for s in r.get_json()["stages"]}
    assert (stages["signed"]["count"], stages["signed"]["median"]) == (2, 180)  # E1 120, E3 240
    r = client.get(f"/api/analytics/utilisation?from={day}&to={day}&station_aet=CT1", headers=auth)
    assert r.get_json()["rooms"][0]["booked_pct"] == 66.7
    r = client.get("/api/analytics/turnaround?from=2026-13-01", headers=auth)
    assert r.status_code == 400 and r.get_json()["error"]["field"] == "from"


def test_api_forecast_shape(client, auth, day):
    r = client.get("/api/analytics/forecast?modality=CT", headers=auth)
    body = r.get_json()
    assert set(body) >= {"days", "mape", "baseline_mape"}
    assert set(body["days"][0]) >= {"date", "expected", "capacity"}
    assert client.get("/api/analytics/forecast", headers=auth).status_code == 400


def test_pages_are_for_admins(app, day):
    clerk = app.test_client()
    login(app, clerk, "clerk")
    for theme in THEMES:
        assert clerk.get(f"/analytics/{theme}").status_code == 403
        assert clerk.get(f"/analytics/{theme}/export.csv").status_code == 403
    assert app.test_client().get("/analytics").status_code == 302  # to the login


def test_a_manager_reads_the_analytics_and_nothing_else(app, day):
    """The manager role: lands on the analytics, reads and exports every dashboard, may not
    adopt a duration (no button, 403), and opens no schedule, patient, order or report."""
    manager = app.test_client()
    csrf = login(app, manager, "manager")
    landing = manager.get("/login")
    assert landing.status_code == 302 and landing.headers["Location"].endswith("/analytics")
    for theme in THEMES:
        assert manager.get(f"/analytics/{theme}?from={day}&to={day}").status_code == 200, theme
        assert manager.get(f"/analytics/{theme}/export.csv?from={day}&to={day}").status_code == 200, theme
    durations = manager.get(f"/analytics/durations?from={day}&to={day}").get_data(as_text=True)
    assert "/analytics/durations/adopt" not in durations
    r = manager.post(
        "/analytics/durations/adopt", data={"procedure_code": "CTHEAD", "minutes": "30", "csrf_token": csrf}
    )
    assert r.status_code == 403
    with app.extensions["ris_sessions"]() as s:
        accession = s.scalars(select(Order.accession_number)).first()
        report = s.scalars(select(ReportVersion.id)).first()
    for path in (
        "/",
        "/patients",
        "/studies",
        f"/orders/{accession}",
        f"/orders/{accession}/journey",
        "/reading",
        f"/reading/versions/{report}/report.pdf",
        "/billing",
        "/audit",
        "/admin/users",
    ):
        assert manager.get(path).status_code == 403, path


def test_each_dashboard_draws_charts_beside_tables_and_exports_csv(app, day):
    admin = app.test_client()
    login(app, admin, "admin")
    for theme in THEMES:
        r = admin.get(f"/analytics/{theme}?from={day}&to={day}")
        html = r.get_data(as_text=True)
        assert r.status_code == 200, theme
        assert "<svg" in html and "<table" in html and "<script" not in html, theme
        csv = admin.get(f"/analytics/{theme}/export.csv?from={day}&to={day}")
        assert csv.status_code == 200 and csv.mimetype == "text/csv"
    text = admin.get(f"/analytics/turnaround/export.csv?from={day}&to={day}").get_data(as_text=True)
    assert "ordered to signed,3,220.0,328.0" in text
    assert admin.get("/analytics/nonsense").status_code == 404
    assert admin.get("/analytics/turnaround?from=tomorrow").status_code == 400


def test_adopting_a_proposed_duration_updates_the_catalog(app, day):
    admin = app.test_client()
    csrf = login(app, admin, "admin")
    r = admin.post("/analytics/durations/adopt", data={"procedure_code": "CTHEAD", "minutes": "30", "csrf_token": csrf})
    assert r.status_code == 302
    with app.extensions["ris_sessions"]() as s:
        assert s.query(ProcedureCode).filter_by(code="CTHEAD").one().default_duration_minutes == 30
    admin.post("/analytics/durations/adopt", data={"procedure_code": "CTHEAD", "minutes": "0", "csrf_token": csrf})
    with app.extensions["ris_sessions"]() as s:
        assert s.query(ProcedureCode).filter_by(code="CTHEAD").one().default_duration_minutes == 30


def test_demo_data_command_refuses_a_database_with_orders(config, app, monkeypatch):
    from ris_app.ops.cli import main

    monkeypatch.setenv("ORTHANC_RIS_HOME", str(config.home))
    monkeypatch.setenv("ORTHANC_RIS_DATABASE_URL", config.database_url)
    first = CliRunner().invoke(main, ["demo-data", "--days", "14"])
    assert first.exit_code == 0, first.output
    assert "steps over 14 days" in first.output
    again = CliRunner().invoke(main, ["demo-data", "--days", "14"])
    assert again.exit_code != 0 and "--force" in again.output
    forced = CliRunner().invoke(main, ["demo-data", "--days", "7", "--force"])
    assert forced.exit_code == 0, forced.output
