"""HL7 patient updates and merges reach the stored studies in Orthanc (queued corrections),
and an A40 merge keeps the prior record, with its audit rows."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from ris_app.db import transaction
from ris_app.model import OrthancTask, StudyCorrection
from ris_app.tracking.events import StudyEvent, apply_study_event
from tests.fixtures import hl7_messages as H
from tests.fixtures.hl7_service import hl7, receiver  # noqa: F401  (fixtures)
from tests.hl7.test_hl7_listener import ack_of

pytestmark = pytest.mark.db


def _store_study(hl7, accession, pid, name):  # noqa: F811
    with transaction(hl7.sessions) as s:
        apply_study_event(
            s,
            StudyEvent.from_json(
                {
                    "seq": 1,
                    "change": "NewStudy",
                    "orthanc_id": "o-" + accession,
                    "study": {
                        "StudyInstanceUID": "1.2.9." + str(len(accession)),
                        "AccessionNumber": accession,
                        "PatientID": pid,
                        "PatientName": name,
                        "CountInstances": 2,
                    },
                }
            ),
        )


def test_a08_and_a40_queue_orthanc_corrections(hl7):  # noqa: F811
    ack_of(hl7, H.ADT_A01, mrn="HL7-OLD", family="Dup")
    ack_of(hl7, H.ADT_A01, mrn="HL7-NEW", family="Kept")
    ack_of(hl7, H.ORM_O01_NW, mrn="HL7-OLD", acc="HL7-ACC-1")
    _store_study(hl7, "HL7-ACC-1", "HL7-OLD", "Dup^Jane")

    assert ack_of(hl7, H.ADT_A08, mrn="HL7-OLD", family="Renamed")[0] == "AA"
    with hl7.sessions() as s:
        (task,) = s.scalars(select(OrthancTask)).all()
        assert task.replace["PatientName"].startswith("Renamed")

    assert ack_of(hl7, H.ADT_A40, mrn="HL7-NEW", family="Kept", prior="HL7-OLD")[0] == "AA"
    with hl7.sessions() as s:
        tasks = s.scalars(select(OrthancTask).order_by(OrthancTask.id)).all()
        assert tasks[-1].replace["PatientID"] == "HL7-NEW"
        # the prior patient is kept, merged; its rename is still on record with it
        actions = {c.action: c.patient_id for c in s.scalars(select(StudyCorrection))}
        assert actions["patient_update"] is not None and actions["merge"] is not None
        assert actions["patient_update"] != actions["merge"]
