"""The order page's edit, the cancel that asks why, the history that names who, the
journey's whole story and the schedule's shown state, through Flask's test client against
a real database (issue 14, orders)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from ris_app.db import transaction
from ris_app.hl7.outbound import set_settings
from ris_app.hl7.settings import Destination, Hl7Settings
from ris_app.model import AuditEvent, Hl7Outbox, Order, Study
from ris_app.model.reporting import COMMUNICATION_METHODS
from ris_app.reporting.lifecycle import record_critical_result, save_report, start_addendum, start_report
from ris_app.web.auth import create_user
from tests.scheduling.test_pages import _add_station, _error_of, _login, _place, _post, _register, _sessions
from tests.tracking.test_tracking import _study

pytestmark = pytest.mark.db


@pytest.fixture
def ehr():
    """An EHR destination for the outbound status messages (queued, not sent)."""
    set_settings(Hl7Settings(destinations=(Destination("EHR", "127.0.0.1", 9),)))
    yield
    set_settings(None)


def _step_of(app, accession):
    with _sessions(app)() as s:
        order = s.scalar(select(Order).where(Order.accession_number == accession))
        step = order.requested_procedures[0].steps[0]
        return order, step, [(h.to_status, h.source, h.actor, h.reason) for h in step.history]


def _changes_of(app, accession) -> list[tuple]:
    """The step's edits and moves (kind, source, actor, what), oldest first."""
    with _sessions(app)() as s:
        order = s.scalar(select(Order).where(Order.accession_number == accession))
        return [(c.kind, c.source, c.actor, c.what) for c in order.requested_procedures[0].steps[0].changes]


def _outbox(app) -> list[str]:
    with _sessions(app)() as s:
        return [m.payload for m in s.scalars(select(Hl7Outbox).order_by(Hl7Outbox.id))]


def _audit(app, action: str) -> list[AuditEvent]:
    with _sessions(app)() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.action == action)))


# ------------------------------------------------------------------ cancel with a reason
def test_cancel_asks_why_and_the_reason_goes_to_history_hl7_and_audit(app, client, ehr):
    token = _login(app, client, "clerk")
    _register(client, token)
    acc = _place(client, token)
    # The old one-click cancel is no longer one click: it leads to the page that asks why.
    r = _post(client, f"/orders/{acc}/status", token, {"action": "cancel", "next": "/"})
    assert r.status_code == 302 and f"/orders/{acc}/cancel" in r.location
    assert _step_of(app, acc)[1].status == "SCHEDULED"

    page = client.get(f"/orders/{acc}/cancel?next=/").get_data(as_text=True)
    assert 'name="reason" value="patient_request"' in page and "Keep the exam" in page
    version = str(_step_of(app, acc)[1].lock_version)
    r = _post(client, f"/orders/{acc}/cancel", token, {"version": version, "next": "/"})
    assert r.status_code == 400 and "Reason is required: choose one" in r.get_data(as_text=True)
    r = _post(client, f"/orders/{acc}/cancel", token, {"version": version, "reason": "other"})
    assert r.status_code == 400
    assert _error_of(r.get_data(as_text=True), "reason_text") == "In your words is required when the reason is Other"
    assert _step_of(app, acc)[1].status == "SCHEDULED"

    sent = {"version": version, "reason": "patient_request", "reason_text": "moved abroad", "next": "/"}
    r = _post(client, f"/orders/{acc}/cancel", token, sent)
    assert r.status_code == 302 and r.location.endswith("/")
    _, step, history = _step_of(app, acc)
    assert step.status == "CANCELED"
    assert history[-1] == ("CANCELED", "page", "clerk1", "Patient's request: moved abroad")
    # The EHR hears why: ORC-16 (order control code reason) of the status message.
    orc = [seg for msg in _outbox(app) for seg in msg.split("\r") if seg.startswith("ORC|")]
    assert any(seg.split("|")[16] == "^Patient's request: moved abroad" for seg in orc if len(seg.split("|")) > 16)
    # The trail has the listed reason, not the free text (it may name people).
    (event,) = [e for e in _audit(app, "step.move") if e.outcome == "success"]
    assert event.detail == "cancel: Patient's request" and event.accession == acc
    order_page = client.get(f"/orders/{acc}").get_data(as_text=True)
    assert "Patient&#39;s request: moved abroad" in order_page and '<td class="actor">clerk1</td>' in order_page
    # Once canceled there is nothing to cancel: the page says so instead of a form.
    assert client.get(f"/orders/{acc}/cancel").status_code == 302


def test_the_schedule_offers_cancel_as_a_link_to_the_reason_page(app, client):
    token = _login(app, client, "clerk")
    _register(client, token)
    acc = _place(client, token)
    schedule = client.get("/").get_data(as_text=True)
    assert f'href="/orders/{acc}/cancel?next=/"' in schedule
    assert client.get(f"/orders/{acc}/cancel").status_code == 200


def test_a_radiologist_may_not_cancel(app, client):
    token = _login(app, client, "clerk")
    _register(client, token)
    acc = _place(client, token)
    client.post("/logout", data={"csrf_token": token})
    token = _login(app, client, "radiologist")
    assert client.get(f"/orders/{acc}/cancel").status_code == 403
    assert _post(client, f"/orders/{acc}/cancel", token, {"reason": "duplicate"}).status_code == 403


# ------------------------------------------------------------------ edit
def test_edit_changes_the_order_tells_the_ehr_and_is_audited(app, client, ehr):
    _add_station(app, "CT9", "CT")
    _add_station(app, "MR9", "MR")
    token = _login(app, client, "clerk")
    _register(client, token)
    acc = _place(client, token)
    page = client.get(f"/orders/{acc}").get_data(as_text=True)
    assert f'href="/orders/{acc}/edit"' in page
    form = client.get(f"/orders/{acc}/edit").get_data(as_text=True)
    assert 'value="CTHEAD" selected' in form and "Reschedule in the calendar" in form
    version = str(_step_of(app, acc)[1].lock_version)
    edit = {
        "version": version,
        "procedure_code": "CTCHEST",
        "station_aet": "CT9",
        "priority": "STAT",
        "referring_physician": "House^Gregory",
        "reason_for_exam": "dyspnoea",
        "notes": "needs an interpreter (Portuguese)",
    }
    # A room of another modality is refused, on the room's field, and nothing changes.
    r = _post(client, f"/orders/{acc}/edit", token, {**edit, "station_aet": "MR9"})
    assert r.status_code == 400 and "is a MR room" in _error_of(r.get_data(as_text=True), "station_aet")
    before = len(_outbox(app))
    r = _post(client, f"/orders/{acc}/edit", token, edit)
    assert r.status_code == 302, r.get_data(as_text=True)
    order, step, _ = _step_of(app, acc)
    assert (order.priority, order.referring_physician, order.reason_for_exam) == ("STAT", "House^Gregory", "dyspnoea")
    assert order.notes == "needs an interpreter (Portuguese)"
    assert (step.station_aet, step.description, step.changed_by) == ("CT9", "CT chest with contrast", "page:clerk1")
    # The EHR hears the change (ORC-1 XX), the worklist item follows, the trail has it.
    new = _outbox(app)[before:]
    assert new and any("\rORC|XX|" in m for m in new)
    assert [e.outcome for e in _audit(app, "order.update")] == ["failed", "success"]  # the refused one too
    # Beside the status history: what the edit changed and who (free text only named).
    (change,) = _changes_of(app, acc)
    assert change == (
        "edit",
        "page",
        "clerk1",
        "priority ROUTINE → STAT; referring physician; reason for exam; notes; procedure CTHEAD → CTCHEST; room any → CT9",
    )
    page = client.get(f"/orders/{acc}").get_data(as_text=True)
    assert (
        'id="changes"' in page
        and "edited: priority ROUTINE → STAT" in page
        and "Portuguese" not in page.split('id="changes"')[1]
    )
    with _sessions(app)() as s:
        o = s.scalar(select(Order).where(Order.accession_number == acc))
        assert b"CT chest with contrast" in o.requested_procedures[0].steps[0].worklist_item
    # A page read before the change is stale: its save is refused, not merged silently.
    r = _post(client, f"/orders/{acc}/edit", token, {**edit, "priority": "LOW"})
    assert r.status_code == 400 and "changed" in r.get_data(as_text=True)
    assert _step_of(app, acc)[0].priority == "STAT"


def test_a_move_is_listed_with_both_times_in_the_site_zone_and_in_the_journey(app, client, auth):
    from ris_app.clock import site_today
    from tests.tracking.test_tracking import _order, _patient

    _add_station(app, "CT2", "CT")
    _patient(client, auth)
    acc = _order(client, auth, start=f"{site_today()}T10:15:00")["accession_number"]
    r = client.post(
        f"/api/orders/{acc}/reschedule",
        json={"scheduled_start": f"{site_today()}T14:45:00", "station_aet": "CT2", "overbook": True},
        headers=auth,
    )
    assert r.status_code == 200, r.json
    (change,) = _changes_of(app, acc)
    assert change == ("move", "api", "api:ORTHANC_RIS_API_TOKEN", "room CT1 → CT2")
    _login(app, client, "clerk")
    page = client.get(f"/orders/{acc}").get_data(as_text=True).split('id="changes"')[1]
    assert f"{site_today()} 10:15" in page and f"{site_today()} 14:45" in page and "room CT1 → CT2" in page
    journey = client.get(f"/orders/{acc}/journey").get_data(as_text=True)
    assert "moved (room CT1 → CT2) to" in journey and f"{site_today()} 14:45" in journey
    api = client.get(f"/api/orders/{acc}/journey", headers=auth).json
    (moved,) = [e for e in api["events"] if e["what"].startswith("moved")]
    assert moved["moved_to"] and moved["who"] == "api:ORTHANC_RIS_API_TOKEN"
    # The same time again is no move: nothing listed.
    client.post(f"/api/orders/{acc}/reschedule", json={"scheduled_start": f"{site_today()}T14:45:00"}, headers=auth)
    assert len(_changes_of(app, acc)) == 1


def test_edit_is_refused_once_the_exam_started(app, client):
    token = _login(app, client, "admin")
    _register(client, token)
    acc = _place(client, token)
    _post(client, f"/orders/{acc}/status", token, {"action": "start"})
    r = client.get(f"/orders/{acc}/edit")
    assert r.status_code == 302 and r.location.endswith(f"/orders/{acc}")
    r = _post(client, f"/orders/{acc}/edit", token, {"procedure_code": "CTHEAD", "priority": "LOW"})
    assert r.status_code == 302 and _step_of(app, acc)[0].priority == "ROUTINE"
    assert f'href="/orders/{acc}/edit"' not in client.get(f"/orders/{acc}").get_data(as_text=True)


# ------------------------------------------------------------------ who, in the history
def test_every_history_row_names_who(app, client, auth):
    token = _login(app, client, "clerk")
    _register(client, token)
    acc = _place(client, token)
    _post(client, f"/orders/{acc}/status", token, {"action": "arrive"})
    _study(client, auth, acc=acc)  # images through the internal API (the admin's token here)
    rows = _step_of(app, acc)[2]
    assert rows == [
        ("SCHEDULED", "page", "clerk1", ""),
        ("ARRIVED", "page", "clerk1", ""),
        ("STARTED", "images", "api:ORTHANC_RIS_API_TOKEN", ""),
    ]
    journey = client.get(f"/orders/{acc}/journey").get_data(as_text=True)
    assert "clerk1" in journey and "first image received" in journey


def test_history_actor_of_system_parts():
    from ris_app.scheduling.history import history_actor

    assert history_actor("page:alice", "page") == "alice"
    assert history_actor("api:orthanc-plugin", "images") == "plugin"
    assert history_actor("system:no-show", "no-show") == "no-show sweep"
    assert history_actor("hl7:EHR", "hl7") == "hl7:EHR"
    assert history_actor("mpps:CT1", "mpps") == "mpps:CT1"
    assert history_actor("", "images") == "images"


# ------------------------------------------------------------------ journey, schedule truth
def test_signed_report_shows_reported_and_the_journey_tells_it_all(app, client, auth):
    token = _login(app, client, "clerk")
    _register(client, token)
    acc = _place(client, token, priority="STAT")
    _study(client, auth, acc=acc)  # the first image starts the exam
    with transaction(_sessions(app)) as s:
        study = s.scalar(select(Study))
        doctor = create_user(s, "dr1", "long-enough-1", "radiologist")
        report = start_report(s, study, doctor)
        save_report(s, report, doctor, {"impression": "no bleed"}, "sign")
        record_critical_result(s, report, doctor, communicated_to="Dr House", method=COMMUNICATION_METHODS[0])
        start_addendum(s, report, doctor)
        save_report(s, report, doctor, {"addendum": "also a sinusitis"}, "sign")
    assert _step_of(app, acc)[1].status == "STARTED"  # nobody completed it: the step says so
    schedule = client.get("/").get_data(as_text=True)
    assert '<span class="status status-reported">reported</span>' in schedule
    assert "status-started" not in schedule
    order_page = client.get(f"/orders/{acc}").get_data(as_text=True)
    assert 'id="step-status">reported<' in order_page
    journey = client.get(f"/orders/{acc}/journey").get_data(as_text=True)
    events = journey.split('id="journey-events"')[1]
    order = ["first image received", "report signed", "critical result told to Dr House", "addendum 1 signed"]
    assert all(w in events for w in order)
    assert [events.index(w) for w in order] == sorted(events.index(w) for w in order)


def test_journey_lists_completed(app, client):
    token = _login(app, client, "admin")
    _register(client, token)
    acc = _place(client, token)
    for action in ("start", "complete"):
        _post(client, f"/orders/{acc}/status", token, {"action": action})
    page = client.get(f"/orders/{acc}/journey").get_data(as_text=True)
    assert "<td>completed</td>" in page and "started → completed" in page


# ------------------------------------------------------------------ live pages
@pytest.mark.parametrize("path", ["/", "/orders/{acc}", "/reading"])
def test_live_pages_answer_304_when_nothing_changed(app, client, path):
    token = _login(app, client, "admin")
    _register(client, token)
    acc = _place(client, token)
    url = path.format(acc=acc)
    client.get(url)  # shows (and so ends) the "order placed" message
    first = client.get(url)
    assert first.status_code == 200 and first.headers["ETag"]
    assert 'data-live="' in first.get_data(as_text=True) and "live.js" in first.get_data(as_text=True)
    reads = len(_audit(app, "worklist.read")) + len(_audit(app, "order.read"))
    again = client.get(url, headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.get_data() == b""
    # a refresh that sent nothing is no read of patient data: not in the trail
    assert len(_audit(app, "worklist.read")) + len(_audit(app, "order.read")) == reads
    _post(client, f"/orders/{acc}/status", token, {"action": "arrive"})
    changed = client.get(url, headers={"If-None-Match": first.headers["ETag"]})
    assert changed.status_code == 200 or path == "/reading"  # the reading list shows studies only


def test_a_live_refresh_leaves_the_message_for_the_page_a_person_opens(app, client):
    """Another tab's refresh must not swallow "Order ... placed" meant for this one."""
    token = _login(app, client, "admin")
    _register(client, token)
    acc = _place(client, token)  # flashes "order placed" for the page the redirect opens
    live = client.get("/", headers={"X-Requested-With": "live.js"})
    assert live.status_code == 200 and 'class="flash' not in live.get_data(as_text=True)
    assert acc in client.get(f"/orders/{acc}").get_data(as_text=True).split('class="flash', 1)[1][:200]


def test_the_api_cancel_takes_a_reason_and_shows_who(app, client, auth):
    from tests.tracking.test_tracking import _order, _patient

    _patient(client, auth)
    acc = _order(client, auth)["accession_number"]
    r = client.post(f"/api/orders/{acc}/status", json={"action": "cancel", "reason": "EHR: duplicate"}, headers=auth)
    assert r.status_code == 200
    last = r.json["scheduled_procedure_step"]["history"][-1]
    assert (last["to"], last["actor"], last["reason"]) == ("CANCELED", "api:ORTHANC_RIS_API_TOKEN", "EHR: duplicate")


def test_the_api_edits_an_order_as_the_page_does(app, client, auth):
    """PATCH /api/orders/<accession>: the page's edit for integrators, with its rules."""
    from tests.tracking.test_tracking import _order, _patient

    _patient(client, auth)
    order = _order(client, auth)
    acc, version = order["accession_number"], order["version"]
    url = f"/api/orders/{acc}"
    r = client.patch(url, json={"priority": "STAT", "notes": "wheelchair", "reason_for_exam": "fall"}, headers=auth)
    assert r.status_code == 200, r.json
    assert (r.json["priority"], r.json["notes"], r.json["reason_for_exam"]) == ("STAT", "wheelchair", "fall")
    assert client.patch(url, json={"priority": "SOON"}, headers=auth).status_code == 400
    r = client.patch(url, json={"procedure_code": "NOPE"}, headers=auth)
    assert r.status_code == 400 and r.json["error"]["field"] == "procedure_code"
    r = client.patch(url, json={"notes": "x", "version": version}, headers=auth)  # read before the edit
    assert r.status_code == 409, r.json
    client.post(f"{url}/status", json={"action": "start"}, headers=auth)
    r = client.patch(url, json={"priority": "LOW"}, headers=auth)
    assert r.status_code == 409 and r.json["error"]["code"] == "illegal_transition"
    events = [(e.action, e.outcome) for e in _audit(app, "order.update")]
    assert events[0] == ("order.update", "success") and ("order.update", "failed") in events
