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
