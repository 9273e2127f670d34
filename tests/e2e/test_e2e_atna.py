"""The ATNA export in the whole system: `orthanc-ris up` with ORTHANC_RIS_AUDIT_SYSLOG pointing
at a UDP syslog listener the test starts; an audit event written to the system's database
is sealed by the sync worker and arrives as a DICOM audit message."""

from __future__ import annotations

import pytest

from ris_app.audit.trail import Who, record
from ris_app.config import Config
from ris_app.db import make_engine, make_sessionmaker, transaction
from tests.audit.syslog_server import UdpSyslog, parse
from tests.conftest import _require_debian_tools, start_system, stop_system, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.postgres_e2e]


@pytest.fixture(scope="module")
def repository():
    server = UdpSyslog()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def system(tmp_path_factory, repository):
    _require_debian_tools()
    s = start_system(
        tmp_path_factory.mktemp("atna"),
        {"ORTHANC_RIS_AUDIT_SYSLOG": f"udp://127.0.0.1:{repository.port}", "ORTHANC_RIS_AUDIT_SOURCE_ID": "RIS-E2E"},
    )
    yield s
    stop_system(s)


def test_an_audit_event_reaches_the_repository(system, repository):
    # Written straight into the trail, as the recording hooks do in their transactions.
    engine = make_engine(Config.from_env(system.env, create_secrets=False).database_url)
    try:
        with transaction(make_sessionmaker(engine)) as s:
            record(s, "patient.read", Who("clerk1", "user", "127.0.0.1"), mrn="ATNA-E2E-1", resource="/patients/<mrn>")
    finally:
        engine.dispose()

    def ours():
        for message in repository.received():
            got = parse(message)
            patient = got.xml.find("ParticipantObjectIdentification")
            if patient is not None and patient.get("ParticipantObjectID") == "ATNA-E2E-1":
                return got
        return None

    got = wait_for(ours, timeout=30)
    assert got.xml.find("EventIdentification/EventID").get("csd-code") == "110110"
    assert got.xml.find("ActiveParticipant").get("UserID") == "clerk1"
    assert got.xml.find("AuditSourceIdentification").get("AuditSourceID") == "RIS-E2E"


def test_a_clerk_on_the_pages_and_an_integrator_on_the_api_are_both_in_the_trail_and_the_repository(system, repository):
    """The issue's scenario, every part real: a clerk logs in and reads a patient's order on
    the pages, an integrator token reads the patient through the API; both reads are in
    GET /api/audit?mrn= under their names, and the syslog repository gets an audit message
    naming each."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    import requests

    from tests.e2e.test_e2e_loop import _order, _register

    cli = str(Path(sys.executable).parent / "orthanc-ris")
    env = {**system.env, "RIS_TEST_PASSWORD": "clerk-password-1"}
    subprocess.run(
        [cli, "create-user", "clara", "--role", "clerk", "--password-env", "RIS_TEST_PASSWORD"],
        env=env,
        check=True,
        capture_output=True,
    )
    made = subprocess.run(
        [cli, "create-token", "ehr-bridge", "--role", "integrator"], env=env, check=True, capture_output=True, text=True
    )
    integrator = made.stdout.strip()
    _register(system, "AUD-E2E-1", "Audit", "Person")
    accession = _order(system, "AUD-E2E-1")["accession_number"]

    clerk = requests.Session()
    page = clerk.get(f"{system.ris_url}/login", timeout=10)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    logged_in = clerk.post(
        page.url, data={"username": "clara", "password": "clerk-password-1", "csrf_token": csrf}, timeout=10
    )
    assert logged_in.ok
    assert clerk.get(f"{system.ris_url}/orders/{accession}", timeout=10).status_code == 200
    r = requests.get(
        f"{system.ris_url}/api/patients/AUD-E2E-1", headers={"Authorization": f"Bearer {integrator}"}, timeout=10
    )
    assert r.status_code == 200

    trail = system.api("GET", "/api/audit?mrn=AUD-E2E-1").json()["items"]
    readers = {(e["actor"], e["actor_kind"], e["action"]) for e in trail if e["action"].endswith(".read")}
    assert ("clara", "user", "order.read") in readers, trail
    assert ("ehr-bridge", "token", "patient.read") in readers, trail

    def both_in_repository():
        users = set()
        for message in repository.received():
            got = parse(message)
            patient = got.xml.find("ParticipantObjectIdentification")
            if patient is not None and patient.get("ParticipantObjectID") == "AUD-E2E-1":
                users.add(got.xml.find("ActiveParticipant").get("UserID"))
        return {"clara", "ehr-bridge"} <= users

    wait_for(both_in_repository, timeout=30)
