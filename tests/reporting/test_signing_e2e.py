"""A signed report reaches a real Orthanc and a test EHR (real MLLP socket) exactly once:
with Orthanc down at first and back later, and with every task carried out twice."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import requests
from sqlalchemy import select

from ris_app.clock import utcnow
from ris_app.config import Config
from ris_app.db import transaction
from ris_app.hl7.outbound import current_settings, set_settings
from ris_app.hl7.sender import OutboxSender
from ris_app.hl7.settings import Hl7Settings
from ris_app.model import OrthancTask, ReportVersion
from ris_app.orthanc.client import OrthancClient, orthanc_request
from ris_app.orthanc.config import render
from ris_app.reporting.outbox import SEND_ORU
from ris_app.reporting.publish import run_report_task
from ris_app.tracking.worker import run_pending_tasks
from tests.conftest import wait_for
from tests.fixtures import hl7_peer
from tests.plugin.test_ris_down import alone_config
from tests.reporting.test_signing_outbox import LATER, _sign

pytestmark = [pytest.mark.e2e, pytest.mark.postgres_e2e]


@pytest.fixture
def orthanc_cfg(tmp_path):
    """Where the worker finds Orthanc: a port nothing listens on until `_start_orthanc`."""
    return alone_config(tmp_path / "pacs")


def _start_orthanc(cfg: Config) -> subprocess.Popen:
    path = cfg.home / "orthanc.json"
    path.write_text(json.dumps(render(cfg)))
    proc = subprocess.Popen(
        ["Orthanc", str(path)],
        stdout=open(cfg.home / "orthanc.log", "wb"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "TCP_NODELAY": "1"},
    )

    def up():
        try:
            return orthanc_request(cfg, "GET", "/system", timeout=1).ok
        except requests.RequestException:
            return False

    wait_for(up, timeout=30)
    return proc


def test_a_signed_report_reaches_orthanc_and_the_ehr_once(app, orthanc_cfg):
    ehr = hl7_peer.Receiver()
    set_settings(Hl7Settings.from_env({"ORTHANC_RIS_HL7_DESTINATIONS": f"EHR=127.0.0.1:{ehr.port}"}))
    sessions = app.extensions["ris_sessions"]
    proc = None
    try:
        vid = _sign(sessions)
        orthanc = OrthancClient(orthanc_cfg, timeout=5)
        sender = OutboxSender(sessions, current_settings())
        assert run_pending_tasks(sessions, orthanc) == 1  # Orthanc is down: only the ORU is done
        assert sender.send_due() == 1
        with sessions() as s:
            v = s.get(ReportVersion, vid)
            assert v.pacs_status.startswith("error: Orthanc unreachable") and v.pdf is None
            uid, expected = v.report.study.study_instance_uid, {v.sop_instance_uid, v.sr_instance_uid}
            report_id = v.report_id

        proc = _start_orthanc(orthanc_cfg)
        assert run_pending_tasks(sessions, orthanc) == 0  # backing off
        assert run_pending_tasks(sessions, orthanc, now=utcnow() + LATER) == 3

        # Every task carried out again, as after a crash before it was marked done.
        with transaction(sessions) as s:
            oru_ids = s.scalars(select(OrthancTask.id).where(OrthancTask.kind == SEND_ORU)).all()
            for t in s.scalars(select(OrthancTask).where(OrthancTask.kind != SEND_ORU)):
                t.state, t.done_at = "pending", None
        assert run_pending_tasks(sessions, orthanc) == 3
        assert not any(run_report_task(sessions, orthanc, t) for t in oru_ids)  # done: not queued again
        assert sender.send_due() == 0

        found = orthanc.post("/tools/find", {"Level": "Instance", "Query": {"StudyInstanceUID": uid}, "Expand": True})
        sops = [i["MainDicomTags"]["SOPInstanceUID"] for i in found.json()]
        assert sorted(sops) == sorted(expected)  # one PDF, one SR: stored twice, held once
        with sessions() as s:
            assert s.get(ReportVersion, vid).pacs_status == "stored"
        orus = ehr.messages("ORU")
        assert [hl7_peer.fields(m, "OBX")[4] for m in orus] == [f"{report_id}.1"]
    finally:
        set_settings(None)
        ehr.stop()
        if proc is not None:
            proc.terminate()
            proc.wait(20)
