"""The clerk's pages through Flask's test client, against a real database: login and roles,
CSRF, form errors that name the field and keep the input, and the happy path."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from ris_app.clock import site_today
from ris_app.db import transaction
from ris_app.model import Order, Patient, Station, StepStatusChange, User
from ris_app.tracking.events import StudyEvent, apply_study_event
from ris_app.web.auth import create_user
from tests.fixtures.web import PASSWORD, login
from tests.fixtures.web import csrf_token as _token

pytestmark = pytest.mark.db

TODAY = site_today().isoformat()
PATIENT = {
    "mrn": "P-100",
    "family_name": "Müller",
    "given_name": "Jürgen",
    "birth_date": "1961-02-03",
    "sex": "M",
    "phone": "+41 44 000 00 00",
    "email": "jm@example.org",
    "address": "Bahnhofstrasse 1",
    "insurance": "KVG 123",
}
ORDER = {
    "mrn": "P-100",
    "procedure_code": "CTHEAD",
    "station_aet": "",
    "scheduled_date": TODAY,
    "scheduled_time": "10:15",
    "priority": "ROUTINE",
    "referring_physician": "Who^Doctor",
    "reason_for_exam": "headache",
}


# ------------------------------------------------------------------ helpers
def _sessions(app):
    return app.extensions["ris_sessions"]


def _count(app, model) -> int:
    with _sessions(app)() as s:
        return s.scalar(select(func.count()).select_from(model))


def _login(app, client, role: str, username: str | None = None) -> str:
    return login(app, client, role, username)


def _post(client, path: str, token: str, data: dict):
    return client.post(path, data={**data, "csrf_token": token})


def _register(client, token, **over):
    r = _post(client, "/patients/new", token, {**PATIENT, **over})
    assert r.status_code == 302, r.get_data(as_text=True)


def _place(client, token, **over) -> str:
    r = _post(client, "/orders/new", token, {**ORDER, **over})
    assert r.status_code == 302, r.get_data(as_text=True)
    return r.location.rsplit("/", 1)[1]


def _error_of(html: str, field: str) -> str:
    match = re.search(rf'<p class="field-error" id="e-{field}">([^<]*)</p>', html)
    return match.group(1) if match else ""


@pytest.fixture
def clerk(app, client):
    return _login(app, client, "clerk")


# ------------------------------------------------------------------ anonymous users
PAGES_GET = [
    "/",
    "/?date=2026-01-01",
    "/patients/new",
    "/orders/new",
    "/orders/new?mrn=X",
    "/orders/RIS00000001",
    "/studies",
    "/studies?unmatched=1",
]
PAGES_POST = ["/patients/new", "/orders/new", "/orders/RIS00000001/status"]


@pytest.mark.parametrize("path", PAGES_GET)
def test_anonymous_get_is_sent_to_login(client, path):
    r = client.get(path)
    assert r.status_code == 302
    assert r.location.startswith("/login?next=")


@pytest.mark.parametrize("path", PAGES_POST)
def test_anonymous_post_is_sent_to_login_and_writes_nothing(app, client, path):
    r = _post(client, path, _token(client), {**PATIENT, **ORDER, "action": "arrive"})
    assert r.status_code == 302
    assert r.location == "/login"  # a POST URL is not a place to come back to
    assert _count(app, Patient) == 0 and _count(app, Order) == 0


def test_every_page_is_in_the_anonymous_lists(app):
    """A new page cannot slip in without the login check being tested."""
    listed = {p.split("?")[0] for p in PAGES_GET + PAGES_POST}
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("pages."):
            path = rule.rule.replace("<accession>", "RIS00000001")
            assert path in listed, f"{rule.rule} is not covered by the anonymous tests"


def test_login_page_sends_back_to_the_page_asked_for(app, client):
    r = client.get("/studies?unmatched=1")
    with transaction(_sessions(app)) as s:
        create_user(s, "tech", PASSWORD, "technologist")
    r = client.post(r.location, data={"username": "tech", "password": PASSWORD, "csrf_token": _token(client)})
    assert r.location == "/studies?unmatched=1"


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil.example"])
def test_login_never_redirects_off_site(app, client, target):
    with transaction(_sessions(app)) as s:
        create_user(s, "c", PASSWORD, "clerk")
    r = client.post(f"/login?next={target}", data={"username": "c", "password": PASSWORD, "csrf_token": _token(client)})
    assert r.location == "/"


def test_wrong_password_is_refused_and_keeps_the_user_name(app, client):
    with transaction(_sessions(app)) as s:
        create_user(s, "clerk1", PASSWORD, "clerk")
    r = client.post("/login", data={"username": "clerk1", "password": "wrong password", "csrf_token": _token(client)})
    assert r.status_code == 401
    html = r.get_data(as_text=True)
    assert "wrong password" in html and 'value="clerk1"' in html
    assert client.get("/").status_code == 302


def test_passwords_are_stored_hashed(app):
    with transaction(_sessions(app)) as s:
        create_user(s, "c", PASSWORD, "clerk")
    with _sessions(app)() as s:
        stored = s.scalar(select(User.password_hash).where(User.username == "c"))
    assert PASSWORD not in stored and stored.split(":")[0] in ("scrypt", "pbkdf2")


def test_inactive_user_cannot_log_in(app, client):
    with transaction(_sessions(app)) as s:
        create_user(s, "gone", PASSWORD, "clerk").active = False
    r = client.post("/login", data={"username": "gone", "password": PASSWORD, "csrf_token": _token(client)})
    assert r.status_code == 401


def test_logout_needs_post_with_token(app, client, clerk):
    assert client.get("/logout").status_code == 405
    assert client.post("/logout").status_code == 400  # no token: a foreign site cannot log us out
    assert client.get("/").status_code == 200
    assert _post(client, "/logout", clerk, {}).status_code == 302
    assert client.get("/").status_code == 302


# ------------------------------------------------------------------ roles
@pytest.mark.parametrize(
    "role, method, path, data",
    [
        ("radiologist", "GET", "/patients/new", None),
        ("radiologist", "POST", "/patients/new", PATIENT),
        ("technologist", "POST", "/patients/new", PATIENT),
        ("radiologist", "GET", "/orders/new", None),
        ("technologist", "POST", "/orders/new", ORDER),
    ],
)
def test_role_may_not_register_or_order(app, client, role, method, path, data):
    token = _login(app, client, role)
    r = client.get(path) if method == "GET" else _post(client, path, token, data)
    assert r.status_code == 403
    assert f"Your role ({role}) may not" in r.get_data(as_text=True)
    assert _count(app, Patient) == 0 and _count(app, Order) == 0


@pytest.mark.parametrize("role", ["clerk", "technologist", "radiologist", "admin"])
def test_every_role_sees_schedule_order_and_studies(app, client, role):
    _login(app, client, role)
    for path in ("/", "/studies"):
        assert client.get(path).status_code == 200


def test_navigation_shows_only_what_the_role_may_open(app, client):
    _login(app, client, "radiologist")
    html = client.get("/").get_data(as_text=True)
    assert 'href="/studies"' in html
    assert 'href="/patients/new"' not in html and 'href="/orders/new"' not in html


@pytest.mark.parametrize(
    "role, action, allowed",
    [
        ("clerk", "arrive", True),
        ("technologist", "arrive", True),
        ("radiologist", "arrive", False),
        ("clerk", "start", False),
        ("technologist", "start", True),
        ("admin", "start", True),
        ("clerk", "complete", False),
    ],
)
def test_status_moves_follow_roles(app, client, role, action, allowed):
    clerk_token = _login(app, client, "clerk", "front-desk")
    _register(client, clerk_token)
    accession = _place(client, clerk_token)
    client.post("/logout", data={"csrf_token": clerk_token})
    token = _login(app, client, role)
    r = _post(client, f"/orders/{accession}/status", token, {"action": action})
    assert (r.status_code == 302) is allowed
    with _sessions(app)() as s:
        moves = s.scalar(select(func.count()).select_from(StepStatusChange))
    assert moves == (2 if allowed else 1)  # the SCHEDULED entry, plus the move when allowed


def test_buttons_offered_match_role_and_status(app, client):
    token = _login(app, client, "clerk")
    _register(client, token)
    accession = _place(client, token)
    schedule = client.get("/").get_data(as_text=True)
    assert 'value="arrive"' in schedule and 'value="start"' not in schedule
    _post(client, f"/orders/{accession}/status", token, {"action": "arrive"})
    page = client.get(f"/orders/{accession}").get_data(as_text=True)
    # cancel is no one-click button: a link to the page that asks why (test_order_pages.py)
    assert 'value="arrive"' not in page and 'value="cancel"' not in page
    assert f'href="/orders/{accession}/cancel?next=' in page


# ------------------------------------------------------------------ CSRF
def test_post_without_token_is_refused_and_writes_nothing(app, client, clerk):
    r = client.post("/patients/new", data=PATIENT)
    assert r.status_code == 400
    assert "Form expired" in r.get_data(as_text=True)
    assert _count(app, Patient) == 0


def test_post_with_another_sessions_token_is_refused(app, client, clerk):
    other = app.test_client()
    foreign_token = _token(other)
    assert foreign_token != clerk
    assert _post(client, "/patients/new", foreign_token, PATIENT).status_code == 400
    assert _count(app, Patient) == 0


def test_status_move_without_token_is_refused(app, client, clerk):
    _register(client, clerk)
    accession = _place(client, clerk)
    assert client.post(f"/orders/{accession}/status", data={"action": "arrive"}).status_code == 400
    assert _count(app, StepStatusChange) == 1


def test_login_form_needs_its_token(app, client):
    with transaction(_sessions(app)) as s:
        create_user(s, "c", PASSWORD, "clerk")
    r = client.post("/login", data={"username": "c", "password": PASSWORD})
    assert r.status_code == 400
    assert client.get("/").status_code == 302


def test_login_starts_a_new_token(app, client):
    before = _token(client)
    after = _login(app, client, "clerk")
    assert before != after


# ------------------------------------------------------------------ form errors
@pytest.mark.parametrize(
    "over, field, reason",
    [
        ({"mrn": ""}, "mrn", "is required"),
        ({"mrn": "x" * 65}, "mrn", "is longer than 64 characters"),
        ({"family_name": "  "}, "family_name", "is required"),
        ({"family_name": "Doe^John"}, "family_name", "may not contain ^ or ="),
        ({"given_name": "A=B"}, "given_name", "may not contain ^ or ="),
        ({"given_name": "back\\slash"}, "given_name", "not allowed"),
        ({"birth_date": "03.02.1961"}, "birth_date", "must be a date as YYYY-MM-DD"),
        ({"birth_date": "2999-01-01"}, "birth_date", "is in the future"),
        ({"sex": "X"}, "sex", "must be one of M, F, O, U"),
        ({"email": "not-an-address"}, "email", "must be an e-mail address"),
        # issue 17: the rules of scheduling.fields, as on the API
        ({"mrn": "A/B"}, "mrn", "may not contain"),
        ({"mrn": "A\x7fB"}, "mrn", "control character"),
        ({"family_name": "Do\u0085e"}, "family_name", "control character"),
    ],
)
def test_bad_patient_input_names_field_and_keeps_values(app, client, clerk, over, field, reason):
    r = _post(client, "/patients/new", clerk, {**PATIENT, **over})
    assert r.status_code == 400
    html = r.get_data(as_text=True)
    assert reason in _error_of(html, field)
    assert 'class="error-summary"' in html and f'href="#f-{field}"' in html
    assert 'value="Bahnhofstrasse 1"' in html  # what the clerk typed is still there
    assert _count(app, Patient) == 0


def test_every_patient_error_is_shown_at_once(app, client, clerk):
    r = _post(client, "/patients/new", clerk, {**PATIENT, "mrn": "", "birth_date": "2999-01-01", "email": "x"})
    html = r.get_data(as_text=True)
    assert all(_error_of(html, f) for f in ("mrn", "birth_date", "email"))
    assert "3 entries need correcting" in html


def test_duplicate_mrn_is_refused(app, client, clerk):
    _register(client, clerk)
    r = _post(client, "/patients/new", clerk, {**PATIENT, "family_name": "Other"})
    assert r.status_code == 400
    assert _error_of(r.get_data(as_text=True), "mrn") == "MRN (patient ID) is already registered"
    assert _count(app, Patient) == 1


def _add_station(app, aet: str, modality: str) -> None:
    with transaction(_sessions(app)) as s:
        s.add(Station(aet=aet, name=f"{aet} room", modality=modality, location="B1"))


@pytest.mark.parametrize(
    "over, field, reason",
    [
        ({"mrn": "NOBODY"}, "mrn", "belongs to no registered patient"),
        ({"mrn": ""}, "mrn", "is required"),
        ({"procedure_code": ""}, "procedure_code", "is required"),
        ({"procedure_code": "NOPE"}, "procedure_code", "is not in the procedure catalog"),
        ({"station_aet": "MR1"}, "station_aet", "is a MR room; CT head without contrast needs CT"),
        ({"station_aet": "GHOST"}, "station_aet", "is not a known station"),
        ({"scheduled_date": ""}, "scheduled_date", "is required"),
        ({"scheduled_date": "28/11/2026"}, "scheduled_date", "must be a date as YYYY-MM-DD"),
        ({"scheduled_time": ""}, "scheduled_time", "is required"),
        ({"scheduled_time": "25:99"}, "scheduled_time", "must be a time as HH:MM"),
        ({"priority": "URGENTISSIMO"}, "priority", "must be one of"),
        ({"referring_physician": "A=B"}, "referring_physician", "not allowed"),
        ({"reason_for_exam": "r" * 65}, "reason_for_exam", "is longer than 64 characters"),
    ],
)
def test_bad_order_input_names_field_and_keeps_values(app, client, clerk, over, field, reason):
    _register(client, clerk)
    _add_station(app, "MR1", "MR")
    r = _post(client, "/orders/new", clerk, {**ORDER, **over})
    assert r.status_code == 400
    html = r.get_data(as_text=True)
    assert reason in _error_of(html, field)
    assert 'value="headache"' in html or field == "reason_for_exam"
    assert _count(app, Order) == 0


def test_order_for_a_station_of_the_right_modality(app, client, clerk):
    _register(client, clerk)
    _add_station(app, "CT1", "CT")
    accession = _place(client, clerk, station_aet="CT1", scheduled_time="14:35")
    html = client.get(f"/orders/{accession}").get_data(as_text=True)
    assert f"{TODAY} 14:35" in html and "CT1 · CT1 room · B1" in html


# ------------------------------------------------------------------ the clerk's day
def test_register_order_schedule_check_in(app, client, clerk):
    r = _post(client, "/patients/new", clerk, {**PATIENT, "mrn": "CJK-1", "family_name": "王", "given_name": "小明"})
    assert r.location == "/orders/new?mrn=CJK-1"
    form = client.get(r.location).get_data(as_text=True)
    assert '<strong id="patient-name">王, 小明</strong>' in form  # the clerk sees whom the order is for
    accession = _place(client, clerk, mrn="CJK-1", priority="STAT")

    schedule = client.get("/").get_data(as_text=True)
    row = re.search(rf'<tr class="row-scheduled" data-accession="{accession}">.*?</tr>', schedule, re.S)
    assert row and "王" in row.group(0) and "10:15" in row.group(0) and "STAT" in row.group(0)

    r = _post(client, f"/orders/{accession}/status", clerk, {"action": "arrive", "next": "/"})
    assert r.location == "/"
    schedule = client.get("/").get_data(as_text=True)
    assert f"Order {accession} is now arrived." in schedule
    assert f'<tr class="row-arrived" data-accession="{accession}">' in schedule

    again = _post(client, f"/orders/{accession}/status", clerk, {"action": "arrive"})
    assert "cannot arrive a step that is ARRIVED" in client.get(again.location).get_data(as_text=True)


def test_other_days_and_rooms(app, client, clerk):
    _register(client, clerk)
    _add_station(app, "CT1", "CT")
    _add_station(app, "CT2", "CT")
    _place(client, clerk, station_aet="CT1", scheduled_time="08:00")
    _place(client, clerk, station_aet="CT2", scheduled_time="09:00")
    _place(client, clerk, scheduled_time="10:00")  # any CT room
    _place(client, clerk, scheduled_date="2030-01-02")

    def times(query: str) -> list[str]:
        return re.findall(
            r'<td class="time"><time [^>]*>([\d:]+)</time></td>', client.get(f"/{query}").get_data(as_text=True)
        )

    assert times("") == ["08:00", "09:00", "10:00"]
    assert times("?station=CT1") == ["08:00", "10:00"]
    assert times("?date=2030-01-02") == ["10:15"]
    assert "The date must be YYYY-MM-DD" in client.get("/?date=tomorrow").get_data(as_text=True)


def _study_event(app, **study):
    with transaction(_sessions(app)) as s:
        apply_study_event(
            s, StudyEvent(seq=1, change=study.pop("change", "NewStudy"), orthanc_id=study.pop("oid"), **study)
        )


def test_radiologists_open_explorer_from_the_order_page_through_the_viewer(app, client):
    token = _login(app, client, "admin", "boss")
    _register(client, token)
    accession = _place(client, token)
    _study_event(app, oid="o-9", study_instance_uid="1.2.3.9", accession_number=accession, patient_id="P-100")
    html = client.get(f"/orders/{accession}").get_data(as_text=True)
    (href,) = re.findall(r'href="([^"]*)"[^>]*>Open in Orthanc Explorer', html)
    assert re.fullmatch(r"/reading/studies/\d+/open/explorer", href), href


def test_order_page_shows_the_linked_study(app, client, clerk):
    _register(client, clerk)
    accession = _place(client, clerk)
    html = client.get(f"/orders/{accession}").get_data(as_text=True)
    assert "No images received yet" in html
    _study_event(
        app,
        oid="o-1",
        study_instance_uid="1.2.3.4",
        accession_number=accession,
        patient_id="P-100",
        modalities=("CT",),
        series_count=2,
        instance_count=7,
    )
    html = client.get(f"/orders/{accession}").get_data(as_text=True)
    assert '<dd id="instance-count">2 series · 7 instances</dd>' in html
    assert "receiving images" in html and "1.2.3.4" in html and "accession number" in html
    # Orthanc asks for a login users never hold: no link straight to it, none for clerks.
    assert "Orthanc Explorer" not in html and "explorer.html" not in html
    assert "started" in re.search(r'id="step-status">(\w+)<', html).group(1)  # images started the step
    _study_event(
        app,
        change="StableStudy",
        oid="o-1",
        study_instance_uid="1.2.3.4",
        accession_number=accession,
        patient_id="P-100",
        modalities=("CT",),
        series_count=2,
        instance_count=7,
    )
    html = client.get(f"/orders/{accession}").get_data(as_text=True)
    assert "images complete" in html and "not yet" not in html
    history = re.findall(r"<td>([^<]+)</td><td>(\w+)</td><td class=\"actor\">([^<]+)</td><td>(\w+)</td>", html)
    # with who (the clerk; the sync's own write names its part) and the cause
    assert history == [("—", "scheduled", "clerk1", "page"), ("scheduled", "started", "images", "images")]


def test_studies_page_flags_unmatched(app, client, clerk):
    _register(client, clerk)
    accession = _place(client, clerk)
    _study_event(
        app,
        oid="o-1",
        study_instance_uid="1.2.3.1",
        accession_number=accession,
        patient_id="P-100",
        patient_name="Müller^Jürgen",
        instance_count=3,
        series_count=1,
    )
    _study_event(
        app,
        oid="o-2",
        study_instance_uid="1.2.3.2",
        accession_number="NOSUCH",
        patient_id="WHO",
        patient_name="Nobody^Known",
        instance_count=1,
        series_count=1,
    )
    html = client.get("/studies").get_data(as_text=True)
    rows = {acc: cls for cls, acc in re.findall(r'<tr class="(\w+)" data-accession="([^"]*)">', html)}
    assert rows == {accession: "linked", "NOSUCH": "unmatched"}
    assert "Nobody, Known" in html and "Müller, Jürgen" in html
    only = client.get("/studies?unmatched=1").get_data(as_text=True)
    assert "NOSUCH" in only and accession not in only


def test_unknown_order_is_404(client, clerk):
    assert client.get("/orders/NOPE").status_code == 404
    assert _post(client, "/orders/NOPE/status", clerk, {"action": "arrive"}).status_code == 404
