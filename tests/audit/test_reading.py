"""Reading the trail: GET /api/audit for admin tokens, the admin page with its CSV export,
and a patient's "who accessed this record". Reading the trail is itself recorded."""

from __future__ import annotations

import csv
import dataclasses
import io
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from ris_app import create_app
from ris_app.audit.query import COLUMNS
from ris_app.audit.trail import Who, record
from ris_app.clock import from_site, site_today, utcnow
from ris_app.db import transaction
from ris_app.model import AuditEvent
from ris_app.web.tokens import create_token
from tests.fixtures.web import login

pytestmark = pytest.mark.db
ALICE = Who("alice", "user", "10.0.0.7")
EHR = Who("ehr", "token", "10.0.0.9")
NEW_YORK = "America/New_York"


def _seed(app, *events: tuple) -> list[int]:
    """Events (action, who, mrn, at or None, fields) in one transaction; their ids."""
    with transaction(app.extensions["ris_sessions"]) as s:
        made = []
        for action, who, mrn, at, fields in events:
            event = record(s, action, who, mrn=mrn, **fields)
            if at is not None:
                event.at = at
            made.append(event)
        s.flush()
        return [e.id for e in made]


def _events(app, action: str) -> list[AuditEvent]:
    with transaction(app.extensions["ris_sessions"], write=False) as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


def _bearer(app, name: str, role: str) -> dict:
    with transaction(app.extensions["ris_sessions"]) as s:
        return {"Authorization": f"Bearer {create_token(s, name, role)}"}


# --------------------------------------------------------------------------- the API
def test_an_admin_token_reads_filtered_events_newest_first(app, client, auth):
    _seed(
        app,
        ("patient.read", ALICE, "MRN-1", None, {"resource": "/orders/<accession>"}),
        ("order.read", EHR, "MRN-1", None, {"accession": "A100"}),
        ("patient.read", EHR, "MRN-2", None, {}),
        ("report.sign", ALICE, "MRN-1", None, {"outcome": "refused"}),
    )
    r = client.get("/api/audit?mrn=MRN-1", headers=auth)
    assert r.status_code == 200, r.json
    items = r.json["items"]
    assert [i["action"] for i in items] == ["report.sign", "order.read", "patient.read"]
    assert {i["actor"] for i in items} == {"alice", "ehr"} and r.json["next_cursor"] is None
    first = items[-1]
    assert first["actor_kind"] == "user" and first["address"] == "10.0.0.7"
    assert first["resource"] == "/orders/<accession>" and first["patient_mrn"] == "MRN-1"
    assert datetime.fromisoformat(first["at"]).utcoffset() is not None  # ISO with its offset

    assert [i["action"] for i in client.get("/api/audit?user=ehr", headers=auth).json["items"]] == [
        "patient.read",
        "order.read",
    ]
    # An action's first word is its family; a whole name is itself only.
    by_action = client.get("/api/audit?action=patient", headers=auth).json["items"]
    assert [(i["action"], i["patient_mrn"]) for i in by_action] == [
        ("patient.read", "MRN-2"),
        ("patient.read", "MRN-1"),
    ]
    assert [i["outcome"] for i in client.get("/api/audit?action=report.sign", headers=auth).json["items"]] == [
        "refused"
    ]


def test_pages_follow_the_cursor_to_the_oldest_event(app, client, auth):
    ids = _seed(app, *[("patient.read", ALICE, f"P-{n}", None, {}) for n in range(5)])
    seen, cursor = [], ""
    for _ in range(5):
        r = client.get(f"/api/audit?action=patient.read&limit=2&cursor={cursor}", headers=auth)
        assert r.status_code == 200
        seen += [i["id"] for i in r.json["items"]]
        cursor = r.json["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(ids, reverse=True)


def test_reading_the_trail_is_recorded(app, client, auth):
    client.get("/api/audit?mrn=MRN-9&action=patient", headers=auth)
    (event,) = _events(app, "audit.read")
    assert event.actor_kind == "token" and event.patient_mrn == "MRN-9" and event.resource == "/api/audit"
    assert event.detail == "action=patient"  # the filter, the MRN in its own field only


def test_an_integrator_token_is_refused(app, client):
    r = client.get("/api/audit", headers=_bearer(app, "ehr", "integrator"))
    assert r.status_code == 403 and r.json["error"]["code"] == "forbidden"
    assert client.get("/api/audit").status_code == 401


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("from=2026-02-30", "from"),
        ("to=yesterday", "to"),
        ("from=20260101", "from"),
        ("from=0001-01-01", "from"),
        ("from=2026-03-02&to=2026-03-01", "from"),
        ("action=Patient%20Read", "action"),
        ("limit=0", "limit"),
        ("limit=5000", "limit"),
        ("cursor=abc", "cursor"),
        ("mrn=" + "9" * 65, "mrn"),
    ],
)
def test_bad_filters_are_400_naming_the_parameter(client, auth, query, field):
    r = client.get(f"/api/audit?{query}", headers=auth)
    assert r.status_code == 400 and r.json["error"]["field"] == field


@pytest.fixture
def new_york_app(config):
    """The app of a department in New York (UTC-5/-4), whatever this server's zone."""
    app = create_app(dataclasses.replace(config, timezone=NEW_YORK))
    yield app
    app.extensions["ris_engine"].dispose()


def test_from_and_to_are_days_in_the_site_zone(new_york_app, auth):
    app, client = new_york_app, new_york_app.test_client()
    day = site_today() - timedelta(days=10)
    # 23:30 in New York is already the next day in UTC, and 23:30 the evening before is
    # `day` in UTC: a filter on UTC days would swap them.
    zone = ZoneInfo(NEW_YORK)
    early = from_site(datetime.combine(day, time(0, 30)), zone)
    late = from_site(datetime.combine(day, time(23, 30)), zone)
    before = early - timedelta(hours=1)
    assert late.date() != day and before.date() == day
    _seed(
        app,
        ("patient.read", ALICE, "NY-1", early, {}),
        ("patient.read", ALICE, "NY-2", late, {}),
        ("patient.read", ALICE, "NY-0", before, {}),
    )
    r = client.get(f"/api/audit?from={day}&to={day}&action=patient.read", headers=auth)
    assert [i["patient_mrn"] for i in r.json["items"]] == ["NY-2", "NY-1"]
    r = client.get(f"/api/audit?to={day - timedelta(days=1)}&action=patient.read", headers=auth)
    assert [i["patient_mrn"] for i in r.json["items"]] == ["NY-0"]


# --------------------------------------------------------------------------- the page
def test_an_admin_sees_the_trail_on_its_page(app, client):
    login(app, client, "admin", "privacy")
    _seed(app, ("order.read", EHR, "MRN-7", None, {"accession": "A700"}), ("login", ALICE, "", None, {}))
    html = client.get("/audit?mrn=MRN-7").get_data(as_text=True)
    assert 'id="audit-events"' in html and "A700" in html and "ehr" in html
    assert "alice" not in html  # the filter holds
    assert 'href="/audit.csv?mrn=MRN-7"' in html
    assert '<a href="/audit"' in html  # the admin's navigation
    (event,) = _events(app, "audit.read")
    assert (event.actor, event.actor_kind, event.resource) == ("privacy", "user", "/audit")


def test_the_page_says_what_is_wrong_with_a_filter(app, client):
    login(app, client, "admin")
    r = client.get("/audit?from=31/12/2026")
    assert r.status_code == 400 and "from: must be a date" in r.get_data(as_text=True)


def test_the_page_shows_older_events_through_its_cursor(app, client, monkeypatch):
    from ris_app.audit import pages

    monkeypatch.setattr(pages, "PAGE_SIZE", 2)
    login(app, client, "admin")
    _seed(app, *[("patient.read", ALICE, f"P-{n}", None, {}) for n in range(3)])
    html = client.get("/audit?action=patient.read").get_data(as_text=True)
    assert "P-2" in html and "P-1" in html and "P-0" not in html
    older = html.split('id="audit-older" href="')[-1] if 'id="audit-older" href="' in html else None
    assert older is None  # the link's id follows its href
    link = html.split('" id="audit-older"')[0].rsplit('href="', 1)[1].replace("&amp;", "&")
    html = client.get(link).get_data(as_text=True)
    assert "P-0" in html and "P-2" not in html


@pytest.mark.parametrize("role", ["clerk", "technologist", "radiologist"])
def test_other_roles_are_refused_the_trail(app, client, role):
    login(app, client, role)
    for path in ("/audit", "/audit.csv", "/patients/MRN-1/access"):
        assert client.get(path).status_code == 403, path
    assert 'href="/audit"' not in client.get("/").get_data(as_text=True)
    assert _events(app, "audit.read") == [] and _events(app, "export.csv") == []


# --------------------------------------------------------------------------- CSV
def test_the_csv_export_has_a_header_rows_and_no_formulas(app, client):
    login(app, client, "admin", "privacy")
    _seed(
        app,
        ("patient.read", Who("=HYPERLINK(1)", "user"), "MRN-5", None, {"detail": "+1 and -2"}),
        ("patient.read", Who("@SUM", "ae", "10.1.1.1"), "MRN-5", None, {"resource": "-x"}),
        ("patient.read", ALICE, "MRN-6", None, {}),
    )
    r = client.get("/audit.csv?mrn=MRN-5")
    assert r.status_code == 200 and r.mimetype == "text/csv"
    disposition = r.headers["Content-Disposition"]
    assert disposition == f'attachment; filename="audit-{site_today().isoformat()}.csv"'
    rows = list(csv.reader(io.StringIO(r.get_data(as_text=True))))
    assert rows[0] == list(COLUMNS) and rows[0][:2] == ["at", "actor"]
    assert len(rows) == 3
    newest, oldest = (dict(zip(rows[0], row, strict=True)) for row in rows[1:])
    assert newest["actor"] == "'@SUM" and newest["resource"] == "'-x" and newest["address"] == "10.1.1.1"
    assert oldest["actor"] == "'=HYPERLINK(1)" and oldest["detail"] == "'+1 and -2"
    assert datetime.fromisoformat(oldest["at"]).utcoffset() is not None
    assert all(not cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)
    (event,) = _events(app, "export.csv")
    assert (event.actor, event.patient_mrn, event.resource) == ("privacy", "MRN-5", "/audit.csv")


def test_every_event_of_an_export_is_read_a_batch_at_a_time(app):
    from ris_app.audit.query import AuditFilter, every

    ids = _seed(app, *[("order.read", ALICE, "MRN-B", None, {}) for _ in range(5)])
    with transaction(app.extensions["ris_sessions"], write=False) as s:
        assert [e.id for e in every(s, AuditFilter(mrn="MRN-B"), batch=2)] == sorted(ids, reverse=True)


# --------------------------------------------------------------------------- a patient's page
def _order(client, auth, mrn: str) -> str:
    r = client.post("/api/patients", json={"mrn": mrn, "family_name": "Access", "given_name": "Ada"}, headers=auth)
    assert r.status_code == 201
    r = client.post(
        "/api/orders",
        json={"mrn": mrn, "procedure_code": "CTHEAD", "scheduled_start": f"{site_today()}T09:00"},
        headers=auth,
    )
    assert r.status_code == 201, r.json
    return r.json["accession_number"]


def test_a_patients_access_list_newest_first_linked_from_the_order(app, client, auth):
    accession = _order(client, auth, "AC-1")
    an_hour_ago = utcnow() - timedelta(hours=1)
    _seed(
        app,
        ("order.read", Who("clerk7", "user", "10.0.0.3"), "AC-1", an_hour_ago, {"accession": accession}),
        ("patient.read", EHR, "AC-1", None, {}),
        ("patient.read", EHR, "OTHER", None, {}),
    )
    login(app, client, "admin", "privacy")
    order_page = client.get(f"/orders/{accession}").get_data(as_text=True)
    assert 'href="/patients/AC-1/access"' in order_page
    html = client.get("/patients/AC-1/access").get_data(as_text=True)
    assert "Who accessed this record" in html and "Access, Ada" in html
    table = html.split('id="patient-access"')[1]
    assert table.index("ehr") < table.index("clerk7") and accession in table and "OTHER" not in table
    assert 'href="/audit?mrn=AC-1"' in html
    (event,) = [e for e in _events(app, "audit.read") if e.resource == "/patients/<mrn>/access"]
    assert event.patient_mrn == "AC-1" and event.actor == "privacy"


def test_the_access_link_is_for_admins_only(app, client, auth):
    accession = _order(client, auth, "AC-2")
    login(app, client, "clerk")
    assert "/patients/AC-2/access" not in client.get(f"/orders/{accession}").get_data(as_text=True)
