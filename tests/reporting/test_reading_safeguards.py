"""Reading safeguards through the Flask test client: the signing step, "Sign and next",
the flags on unmatched and unfinished studies, and viewer links by role."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from ris_app.db import transaction
from ris_app.model import FINAL, Report, Study
from ris_app.reporting import flags as rflags
from ris_app.scheduling.states import SPSStatus
from ris_app.web.auth import create_user
from tests.reporting.test_reading_pages import _login, _post
from tests.reporting.test_reporting import T0, _patient, _study

pytestmark = pytest.mark.db


@pytest.fixture
def studies(app):
    """A STAT head CT, an urgent chest CT and a routine head CT of three patients, all
    linked and finished, plus an unmatched MR: ids by name."""
    with transaction(app.extensions["ris_sessions"]) as s:
        for name, role in (("rad", "radiologist"), ("clerk", "clerk"), ("tech", "technologist")):
            create_user(s, name, "password-123", role, full_name=name.upper())
        made = {
            "stat": _study(s, _patient(s, "P1", "Müller", "Anna"), priority="STAT"),
            "high": _study(s, _patient(s, "P2", "Okafor", "Chidi"), code="CTCHEST", priority="HIGH"),
            "routine": _study(s, _patient(s, "P3", "Lind", "Åsa"), received=T0 + timedelta(hours=1)),
            "unmatched": _study(s, mrn="EXT-9", received=T0 + timedelta(hours=2)),
        }
        made["unmatched"].modalities = "MR"
        for study in made.values():
            study.stable_at = study.last_received_at
            if study.order is not None:
                study.order.requested_procedures[0].steps[0].status = SPSStatus.COMPLETED
        return {k: v.id for k, v in made.items()}


def _report_status(app, study_id: int) -> str | None:
    with transaction(app.extensions["ris_sessions"]) as s:
        report = s.query(Report).filter_by(study_id=study_id).one_or_none()
        return report.status if report else None


def _row_flags(html: str, study_uid: str) -> list[str]:
    row = re.search(rf'<tr data-study-uid="{re.escape(study_uid)}">(.*?)</tr>', html, re.S).group(1)
    return re.findall(r'data-flag="(\w+)">([^<]+)<', row)


def test_signing_needs_the_confirmed_step_with_the_patient_shown(app, client, studies):
    token = _login(client, "rad")
    url = f"/reading/studies/{studies['stat']}/report"
    r = _post(client, url, token, {"impression": "Normal.", "findings": "a\r\nb", "action": "sign"})
    page = r.get_data(as_text=True)
    assert r.status_code == 200 and "Sign this report?" in page and "The signed report is final." in page
    for field, value in (("patient", "Müller, Anna"), ("mrn", "P1"), ("procedure", "CT head without contrast")):
        assert f'data-field="{field}">{value}<' in page
    assert re.search(r'data-field="accession">T\d+<', page)
    assert 'name="impression" value="Normal."' in page and 'name="confirmed" value="1"' in page
    assert _report_status(app, studies["stat"]) is None  # nothing saved, nothing signed
    # "Keep editing" saves the text and goes back to it, unsigned.
    r = _post(client, url, token, {"impression": "Normal.", "action": "draft", "confirmed": "1"})
    assert r.status_code == 302 and _report_status(app, studies["stat"]) == "DRAFT"
    r = _post(client, url, token, {"impression": "Normal.", "action": "sign", "confirmed": "1"}, follow_redirects=True)
    assert "Report signed." in r.get_data(as_text=True) and _report_status(app, studies["stat"]) == FINAL


def test_report_page_carries_the_dialog_and_both_sign_buttons(client, studies):
    _login(client, "rad")
    page = client.get(f"/reading/studies/{studies['stat']}").get_data(as_text=True)
    assert 'id="sign"' in page and 'id="sign-next"' in page and '<dialog id="sign-dialog"' in page
    dialog = page[page.index('<dialog id="sign-dialog"') : page.index("</dialog>")]
    assert 'data-field="patient">Müller, Anna<' in dialog and "The signed report is final." in dialog
    # Inert until the script opens it: without JavaScript the confirm page asks instead.
    assert '<input type="hidden" name="confirmed" value="1" disabled>' in dialog
    assert 'id="confirm-sign" disabled' in dialog
    assert "reading.js" in page


def test_sign_and_next_follows_the_worklist_order_and_filters(app, client, studies):
    token = _login(client, "rad")
    # Under the CT filter the order is STAT, HIGH, then routine; the MR is filtered out.
    listed = client.get("/reading?modality=CT").get_data(as_text=True)
    assert f'href="/reading/studies/{studies["stat"]}?modality=CT"' in listed
    page = client.get(f"/reading/studies/{studies['stat']}?modality=CT").get_data(as_text=True)
    assert f'action="/reading/studies/{studies["stat"]}/report?modality=CT"' in page
    assert 'href="/reading?modality=CT"' in page  # back to the same list

    def sign_next(study: str):
        r = _post(
            client,
            f"/reading/studies/{studies[study]}/report?modality=CT",
            token,
            {"impression": "Normal.", "action": "sign_next", "confirmed": "1"},
        )
        assert r.status_code == 302 and _report_status(app, studies[study]) == FINAL
        return urlsplit(r.headers["Location"])

    # A draft of the urgent chest CT is not "unread": next after the STAT is the routine one.
    _post(client, f"/reading/studies/{studies['high']}/report", token, {"impression": "", "action": "draft"})
    to = sign_next("stat")
    assert to.path == f"/reading/studies/{studies['routine']}"
    assert parse_qs(to.query) == {"modality": ["CT"], "signed": [str(studies["stat"])]}
    page = client.get(f"{to.path}?{to.query}").get_data(as_text=True)
    note = re.search(r'<p class="flash ok signed-note" id="signed-note".*?</p>', page, re.S).group(0)
    assert "Signed (final):" in note and "Müller, Anna" in note and "P1" in note and "CT head" in note
    assert f'href="/reading/studies/{studies["stat"]}"' in note
    # Nothing unread left under the filter: back to the list, with the note.
    to = sign_next("routine")
    assert to.path == "/reading" and parse_qs(to.query) == {"modality": ["CT"], "signed": [str(studies["routine"])]}
    page = client.get(f"{to.path}?{to.query}").get_data(as_text=True)
    assert "Signed (final):" in page and "Lind, Åsa" in page and "Nothing unread is left in this list." in page
    # Without a filter the unmatched MR is next.
    _post(client, f"/reading/studies/{studies['high']}/report", token, {"impression": "PE.", "action": "draft"})
    r = _post(
        client,
        f"/reading/studies/{studies['high']}/report",
        token,
        {"impression": "PE.", "action": "sign_next", "confirmed": "1"},
    )
    assert urlsplit(r.headers["Location"]).path == f"/reading/studies/{studies['unmatched']}"


def test_a_signed_note_only_for_a_signed_report(client, studies):
    _login(client, "rad")
    page = client.get(f"/reading/studies/{studies['stat']}?signed={studies['high']}").get_data(as_text=True)
    assert "signed-note" not in page  # not signed: no note, whatever the address says
    assert "signed-note" not in client.get("/reading?signed=x").get_data(as_text=True)


def test_unmatched_study_is_flagged_and_signing_needs_its_acknowledgement(app, client, studies):
    token = _login(client, "rad")
    with transaction(app.extensions["ris_sessions"]) as s:
        uid = s.get(Study, studies["unmatched"]).study_instance_uid
    assert _row_flags(client.get("/reading").get_data(as_text=True), uid) == [("unmatched", "unmatched")]
    page = client.get(f"/reading/studies/{studies['unmatched']}").get_data(as_text=True)
    assert 'id="reading-flags"' in page and "No order claims these images" in page
    url = f"/reading/studies/{studies['unmatched']}/report"
    page = _post(client, url, token, {"impression": "Normal.", "action": "sign"}).get_data(as_text=True)
    assert '<input type="checkbox" name="ack_unmatched" value="1" required>' in page
    # Confirmed but not acknowledged (a hand-made form): refused, back to the step, text kept.
    r = _post(client, url, token, {"impression": "Normal.", "action": "sign", "confirmed": "1"})
    page = r.get_data(as_text=True)
    assert r.status_code == 200 and "Sign this report?" in page and 'value="Normal."' in page
    assert "ack_unmatched: unmatched: confirm that you checked it before signing" in page
    assert _report_status(app, studies["unmatched"]) is None
    r = _post(client, url, token, {"impression": "Normal.", "action": "sign", "confirmed": "1", "ack_unmatched": "1"})
    assert r.status_code == 302 and _report_status(app, studies["unmatched"]) == FINAL


def test_unfinished_exams_are_flagged_and_warned(app, client, studies):
    token = _login(client, "rad")
    with transaction(app.extensions["ris_sessions"]) as s:
        study = s.get(Study, studies["stat"])
        study.stable_at = None
        study.order.requested_procedures[0].steps[0].status = SPSStatus.STARTED
        uid = study.study_instance_uid
    flags = _row_flags(client.get("/reading").get_data(as_text=True), uid)
    assert flags == [("receiving", "images arriving"), ("in_progress", "exam not completed")]
    page = client.get(f"/reading/studies/{studies['stat']}").get_data(as_text=True)
    assert "Images are still arriving" in page and "The exam is not completed yet" in page
    page = _post(
        client, f"/reading/studies/{studies['stat']}/report", token, {"impression": "x", "action": "sign"}
    ).get_data(as_text=True)
    assert "Images are still arriving" in page and "ack_" not in page  # a warning, no extra tick
    with transaction(app.extensions["ris_sessions"]) as s:
        s.get(Study, studies["stat"]).order.requested_procedures[0].steps[0].status = SPSStatus.DISCONTINUED
    page = client.get(f"/reading/studies/{studies['stat']}").get_data(as_text=True)
    assert "The exam was discontinued" in page and "The exam is not completed yet" not in page
    assert _row_flags(client.get("/reading").get_data(as_text=True), "1.2.3.2") == []  # the finished one


def test_flag_table_codes_are_unique_and_acknowledged_ones_say_what():
    codes = [f.code for f in rflags.FLAGS]
    assert len(codes) == len(set(codes))
    assert all(f.ack for f in rflags.FLAGS if f.needs_ack)


@pytest.mark.parametrize(
    "role, links",
    [
        ("tech", ["ohif"]),
        ("rad", ["ohif", "explorer"]),
        ("clerk", []),
    ],
)
def test_order_page_viewer_links_by_role(app, client, studies, role, links):
    with transaction(app.extensions["ris_sessions"]) as s:
        accession = s.get(Study, studies["stat"]).order.accession_number
    _login(client, role)
    html = client.get(f"/orders/{accession}").get_data(as_text=True)
    found = re.findall(r'data-viewer="(\w+)" href="([^"]+)"[^>]*>([^<]+)<', html)
    assert [v for v, _, _ in found] == links
    for viewer, href, label in found:
        assert href == f"/reading/studies/{studies['stat']}/open/{viewer}"
        assert label == ("View images (OHIF, read only)" if viewer == "ohif" else "Open in Orthanc Explorer")
        assert client.get(href).status_code == 302  # each shown link opens for this role
    assert ":8042" not in html and "explorer.html" not in html


def test_report_page_shows_only_the_viewers_the_role_may_open(app, client, studies):
    _login(client, "tech")
    page = client.get(f"/reading/studies/{studies['stat']}").get_data(as_text=True)
    assert 'id="open-ohif"' in page and 'id="open-explorer"' not in page
    clerk = app.test_client()
    _login(clerk, "clerk")
    page = clerk.get(f"/reading/studies/{studies['stat']}").get_data(as_text=True)
    assert 'id="open-ohif"' not in page and 'id="open-explorer"' not in page
