"""One link precedence for every path that links images to an order: a study event from
the plugin, reconciliation, and an MPPS N-CREATE. The same identifiers, conflicting on
purpose, go through all three against a real database; each must find the same order by
the same method (AccessionNumber, then StudyInstanceUID, then SPS ID)."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset
from sqlalchemy import select

from ris_app.config import Config
from ris_app.model import PerformedProcedureStep, Study
from ris_app.orthanc.client import OrthancClient
from ris_app.tracking import mpps
from ris_app.tracking.events import StudyEvent, apply_study_event
from ris_app.tracking.reconcile import reconcile
from tests.fixtures.orthanc_answers import RecordedOrthanc, serve
from tests.tracking.test_tracking import _order, _patient

pytestmark = pytest.mark.db

NEW_UID = "1.2.826.0.1.3680043.8.498.77"  # a StudyInstanceUID no order has


@pytest.fixture
def sessions(app):
    return app.extensions["ris_sessions"]


@pytest.fixture
def orders(client, auth) -> dict[str, dict]:
    _patient(client, auth)
    return {name: _order(client, auth) for name in "ABC"}


def _ids(orders, accession, study_uid, sps_ids):
    """Identifiers from a case: order names stand for that order's accession, UID or SPS ID."""
    acc = orders[accession]["accession_number"] if accession in orders else accession
    uid = orders[study_uid]["study_instance_uid"] if study_uid in orders else study_uid
    sps = tuple(orders[x]["scheduled_procedure_step"]["sps_id"] if x in orders else x for x in sps_ids)
    return acc, uid, sps


def via_study_event(sessions, acc, uid, sps) -> tuple[str | None, str]:
    with sessions() as s:
        study = apply_study_event(
            s,
            StudyEvent.from_json(
                {
                    "seq": 1,
                    "change": "NewStudy",
                    "orthanc_id": "o1",
                    "study": {
                        "StudyInstanceUID": uid,
                        "AccessionNumber": acc,
                        "ScheduledProcedureStepIDs": list(sps),
                        "CountSeries": 1,
                        "CountInstances": 2,
                    },
                }
            ),
        )
        result = (study.order.accession_number if study.order else None, study.link_method)
        s.rollback()
    return result


def via_mpps(sessions, acc, uid, sps) -> tuple[str | None, str]:
    """An N-CREATE with one Scheduled Step Attributes item per SPS ID, as a modality sends."""
    ds = Dataset()
    ds.PerformedProcedureStepStatus = "IN PROGRESS"
    items = []
    for sps_id in sps or ("",):
        item = Dataset()
        item.AccessionNumber = acc
        item.StudyInstanceUID = uid
        item.ScheduledProcedureStepID = sps_id
        items.append(item)
    ds.ScheduledStepAttributesSequence = items
    with sessions() as s:
        assert mpps.MppsManager().create(s, "1.2.826.0.1.3680043.8.498.99", ds).status == mpps.SUCCESS
        pps = s.scalar(select(PerformedProcedureStep))
        step, method = mpps.find_scheduled_step(s, ds)
        assert pps.step is step  # what N-CREATE recorded is what the lookup answers
        result = (step.requested_procedure.order.accession_number if step else None, method)
        s.rollback()
    return result


def via_reconcile(sessions, tmp_path, acc, uid, sps) -> tuple[str | None, str]:
    orthanc = RecordedOrthanc()
    orthanc.add_study("o1", study_uid=uid, accession=acc, sps_ids=sps)
    with serve(orthanc) as url:
        cfg = Config.from_env(
            {
                "ORTHANC_RIS_HOME": str(tmp_path),
                "ORTHANC_RIS_API_TOKEN": "t",
                "ORTHANC_RIS_SECRET_KEY": "s",
                "ORTHANC_RIS_ORTHANC_URL": url,
            }
        )
        assert reconcile(sessions, OrthancClient(cfg)).added == 1
    with sessions() as s:
        study = s.scalar(select(Study).where(Study.study_instance_uid == uid))
        return (study.order.accession_number if study.order else None, study.link_method)


CASES = {
    # name: (accession, StudyInstanceUID, SPS IDs) -> (order, method); A, B, C name orders
    "accession beats another order's SPS ID": (("A", NEW_UID, ("B",)), ("A", "accession")),
    "accession beats another order's UID and SPS ID": (("A", "B", ("C",)), ("A", "accession")),
    "unknown accession: the UID": (("NOSUCH", "B", ("A",)), ("B", "study_uid")),
    "no accession: the UID beats an SPS ID": (("", "C", ("B",)), ("C", "study_uid")),
    "unknown accession and UID: the SPS ID": (("NOSUCH", NEW_UID, ("B",)), ("B", "sps_id")),
    "the first SPS ID that names a step": (("", NEW_UID, ("NOSUCH", "C", "A")), ("C", "sps_id")),
    "nothing names an order": (("NOSUCH", NEW_UID, ("NOSUCH",)), (None, "")),
}


@pytest.mark.parametrize("case", list(CASES))
def test_study_events_reconciliation_and_mpps_link_alike(sessions, orders, tmp_path, case):
    (accession, study_uid, sps_ids), (expected_order, expected_method) = CASES[case]
    ids = _ids(orders, accession, study_uid, sps_ids)
    expected = (orders[expected_order]["accession_number"] if expected_order else None, expected_method)
    assert via_mpps(sessions, *ids) == expected
    assert via_study_event(sessions, *ids) == expected
    assert via_reconcile(sessions, tmp_path, *ids) == expected  # last: it commits


def test_reconciliation_links_by_sps_id(sessions, orders, tmp_path, client, auth):
    """A study the feed never delivered, whose only link is the SPS ID in its images
    (an unknown accession typed at the console), is linked when reconciliation finds it."""
    b = orders["B"]
    assert via_reconcile(sessions, tmp_path, "TYPO", NEW_UID, (b["scheduled_procedure_step"]["sps_id"],)) == (
        b["accession_number"],
        "sps_id",
    )
    assert client.get(f"/api/orders/{b['accession_number']}", headers=auth).json["status"] == "STARTED"


def test_mpps_takes_the_step_its_sps_id_names_in_the_order_found(sessions, orders):
    """MPPS reports on one step: of the order the precedence found, the one the SPS ID
    names, else the order's primary step (another order's SPS ID changes nothing)."""
    from ris_app.tracking.linking import find_step_for

    a, b = orders["A"], orders["B"]
    with sessions() as s:
        step, method = find_step_for(s, a["accession_number"], "", [a["scheduled_procedure_step"]["sps_id"]])
        assert (step.sps_id, method) == (a["scheduled_procedure_step"]["sps_id"], "accession")
        step, method = find_step_for(s, a["accession_number"], "", [b["scheduled_procedure_step"]["sps_id"]])
        assert (step.sps_id, method) == (a["scheduled_procedure_step"]["sps_id"], "accession")
        assert find_step_for(s, "NOSUCH", NEW_UID, ["NOSUCH"]) == (None, "")
