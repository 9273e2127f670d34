"""The audit trail of the MPPS SCP through a real pynetdicom association: each N-CREATE
and N-SET is an event naming the calling AE and its address, written with the change; a
refused request and a refused association are events too (ris_app/tracking/mpps.py)."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import ModalityPerformedProcedureStep

from ris_app.tracking import mpps
from tests.conftest import free_port
from tests.fixtures.audit import events, holds_no_name, seen

pytestmark = pytest.mark.db


@pytest.fixture
def scp(app, config):
    port = free_port()
    server = mpps.serve(config.database_url, "127.0.0.1", port, "RISMPPS", block=False)
    yield port
    server.shutdown()


def _order(client, auth) -> dict:
    r = client.post(
        "/api/patients",
        json={"mrn": "MP-1", "family_name": "Zyxwvutson", "given_name": "Quin", "birth_date": "1980-05-06"},
        headers=auth,
    )
    assert r.status_code == 201
    assert client.post("/api/stations", json={"aet": "CT1", "modality": "CT"}, headers=auth).status_code == 201
    r = client.post(
        "/api/orders",
        json={"mrn": "MP-1", "procedure_code": "CTHEAD", "station_aet": "CT1", "scheduled_start": "2026-11-28T10:00"},
        headers=auth,
    )
    assert r.status_code == 201
    return r.json


def _associate(port: int, aet: str):
    ae = AE(ae_title=aet)
    ae.add_requested_context(ModalityPerformedProcedureStep)
    return ae.associate("127.0.0.1", port, ae_title="RISMPPS")


def test_mpps_create_and_set_are_events_of_the_calling_ae(app, client, auth, scp):
    order = _order(client, auth)
    acc = order["accession_number"]
    ds, item = Dataset(), Dataset()
    item.AccessionNumber = acc
    item.StudyInstanceUID = order["study_instance_uid"]
    ds.ScheduledStepAttributesSequence = [item]
    ds.PerformedProcedureStepStatus = "IN PROGRESS"
    ds.PerformedSeriesSequence = []
    mods = Dataset()
    mods.PerformedProcedureStepStatus = "COMPLETED"
    uid = generate_uid()
    assoc = _associate(scp, "CT1")
    assert assoc.is_established
    try:
        assert assoc.send_n_create(ds, ModalityPerformedProcedureStep, uid)[0].Status == 0
        assert assoc.send_n_set(mods, ModalityPerformedProcedureStep, uid)[0].Status == 0
        assert assoc.send_n_set(mods, ModalityPerformedProcedureStep, generate_uid())[0].Status == 0x0112
    finally:
        assoc.release()
    rows = [e for e in events(app.extensions["ris_sessions"]) if e.action.startswith("mpps.")]
    assert [seen(e) for e in rows] == [
        ("mpps.create", "CT1", "ae", "MP-1", acc, "success"),
        ("mpps.set", "CT1", "ae", "MP-1", acc, "success"),
        ("mpps.set", "CT1", "ae", "", "", "failed"),
    ]
    assert rows[0].address == "127.0.0.1" and rows[0].resource == f"MPPS {uid}"
    assert rows[2].detail == "0x0112"
    holds_no_name(events(app.extensions["ris_sessions"]), "Zyxwvutson", "Quin", "1980")


def test_an_association_from_an_unknown_ae_is_a_refused_event(app, scp):
    assoc = _associate(scp, "INTRUDER")
    assert assoc.is_rejected
    (refused,) = events(app.extensions["ris_sessions"], action="dicom.associate")
    assert (refused.actor, refused.actor_kind, refused.address, refused.outcome) == (
        "INTRUDER",
        "ae",
        "127.0.0.1",
        "refused",
    )
