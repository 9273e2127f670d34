"""One merge for the pages and HL7: a merge from the merge page and an ADT^A40 leave the
database alike (the merged record kept, marked merged into the survivor; orders, worklist
items, audit and Orthanc corrections the same), and a late message with the merged MRN
lands on the survivor either way."""

from __future__ import annotations

import json
from io import BytesIO

import pydicom
import pytest
from sqlalchemy import select

from ris_app.db import transaction
from ris_app.model import Order, OrthancTask, Patient, Study, StudyCorrection
from ris_app.scheduling.orders import find_order, primary_step
from ris_app.tracking.events import StudyEvent, apply_study_event
from tests.fixtures import hl7_messages as H
from tests.fixtures.hl7_service import hl7, receiver  # noqa: F401  (fixtures)
from tests.hl7.test_hl7_listener import ack_of

pytestmark = pytest.mark.db


def _store_study(hl7, uid: str, accession: str, pid: str) -> None:  # noqa: F811
    event = {
        "seq": 1,
        "change": "NewStudy",
        "orthanc_id": "o-" + uid,
        "study": {
            "StudyInstanceUID": uid,
            "AccessionNumber": accession,
            "PatientID": pid,
            "PatientName": "Dup^Jane",
            "CountInstances": 2,
        },
    }
    with transaction(hl7.sessions) as s:
        apply_study_event(s, StudyEvent.from_json(event))


def _two_patients(hl7, p: str, n: int) -> None:  # noqa: F811
    """`{p}OLD` with an order, its study and an unmatched study; `{p}NEW` with nothing."""
    assert ack_of(hl7, H.ADT_A01, mrn=f"{p}OLD", family="Dup")[0] == "AA"
    assert ack_of(hl7, H.ADT_A01, mrn=f"{p}NEW", family="Kept")[0] == "AA"
    assert ack_of(hl7, H.ORM_O01_NW, mrn=f"{p}OLD", acc=f"{p}ACC", placer=f"{p}PL")[0] == "AA"
    _store_study(hl7, f"1.2.9.{n}.1", f"{p}ACC", f"{p}OLD")
    _store_study(hl7, f"1.2.9.{n}.2", "", f"{p}OLD")  # filed under the old MRN, no order


def _snapshot(hl7, p: str) -> dict:  # noqa: F811
    """What a merge leaves in the database for the patients named `{p}...`, with the prefix
    taken out (and who performed it: the page's user or 'hl7')."""
    with hl7.sessions() as s:
        patients = s.scalars(select(Patient).where(Patient.mrn.startswith(p)).order_by(Patient.mrn)).all()
        ids = {pt.id: pt.mrn for pt in patients}
        orders = s.scalars(select(Order).where(Order.patient_id.in_(ids))).all()
        studies = s.scalars(select(Study).where(Study.patient_mrn.startswith(p))).all()
        out = {
            "patients": [(pt.mrn, pt.family_name, pt.given_name, ids.get(pt.merged_into_id)) for pt in patients],
            "orders": sorted((o.accession_number, o.patient.mrn) for o in orders),
            "worklist": sorted(
                (o.accession_number, pydicom.dcmread(BytesIO(primary_step(o).worklist_item)).PatientID) for o in orders
            ),
            "studies": sorted((st.accession_number, st.order.accession_number if st.order else None) for st in studies),
            "corrections": sorted(
                (
                    c.action,
                    ids.get(c.patient_id),
                    json.dumps(c.before, sort_keys=True),
                    json.dumps(c.after, sort_keys=True),
                )
                for c in s.scalars(select(StudyCorrection).where(StudyCorrection.patient_id.in_(ids)))
            ),
            "orthanc_tasks": sorted(
                (t.study.accession_number, json.dumps(t.replace, sort_keys=True), t.state)
                for t in s.scalars(select(OrthancTask).join(Study).where(Study.patient_mrn.startswith(p)))
            ),
        }
    return json.loads(json.dumps(out).replace(p, "<p>"))


def test_page_merge_and_a40_leave_the_same_database(hl7, app, client):  # noqa: F811
    from tests.scheduling.test_pages import _login, _post

    _two_patients(hl7, "PG", 1)
    _two_patients(hl7, "HL", 2)
    token = _login(app, client, "admin")
    assert _post(client, "/patients/merge", token, {"survivor_mrn": "PGNEW", "merged_mrn": "PGOLD"}).status_code == 302
    assert ack_of(hl7, H.ADT_A40, mrn="HLNEW", family="Kept", prior="HLOLD")[0] == "AA"

    by_page, by_hl7 = _snapshot(hl7, "PG"), _snapshot(hl7, "HL")
    assert by_page == by_hl7
    # ... and that one result is: the merged record kept, marked merged into the survivor
    assert by_page["patients"] == [["<p>NEW", "Kept", "Jane", None], ["<p>OLD", "Dup", "Jane", "<p>NEW"]]
    assert by_page["orders"] == by_page["worklist"] == [["<p>ACC", "<p>NEW"]]
    assert [c[0] for c in by_page["corrections"]] == ["merge"]
    assert {json.loads(t[1])["PatientID"] for t in by_page["orthanc_tasks"]} == {"<p>NEW"}
    assert len(by_page["orthanc_tasks"]) == 2  # the order's study and the one filed under the old MRN

    # A late order with the merged MRN lands on the survivor, whichever path merged.
    for p in ("PG", "HL"):
        assert ack_of(hl7, H.ORM_O01_NW, mrn=f"{p}OLD", acc=f"{p}LATE", placer=f"{p}PL2")[0] == "AA"
        with hl7.sessions() as s:
            assert find_order(s, f"{p}LATE").patient.mrn == f"{p}NEW"
    # Merging again: the page refuses, the EHR's repeat is acknowledged and changes nothing.
    assert _post(client, "/patients/merge", token, {"survivor_mrn": "PGNEW", "merged_mrn": "PGOLD"}).status_code == 400
    code, _, reply, _ = ack_of(hl7, H.ADT_A40, mrn="HLNEW", family="Kept", prior="HLOLD")
    assert code == "AA" and b"already merged" in reply
    assert _snapshot(hl7, "HL")["corrections"] == by_hl7["corrections"]
