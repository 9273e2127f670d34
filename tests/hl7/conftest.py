"""Fixtures of the HL7 tests: a test EHR receiving our outbound messages, and the HL7
service (MLLP listener and outbox sender) on a free port against the test's database."""

from __future__ import annotations

import pytest

from ris_app.db import transaction
from ris_app.hl7.listener import Hl7Service
from ris_app.hl7.outbound import set_settings
from ris_app.hl7.settings import Destination, Hl7Settings
from ris_app.scheduling.catalog import seed_default_catalog
from tests.conftest import free_port
from tests.fixtures.hl7_peer import Receiver


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop()


@pytest.fixture
def hl7(config, receiver):
    settings = Hl7Settings(
        port=free_port(),
        read_timeout=1.0,
        idle_timeout=30,
        max_message_bytes=64 * 1024,
        station_rules="procedure:MRKNEE=MRK1;modality:US=US1",
        destinations=(Destination("EHR", "127.0.0.1", receiver.port),),
        retry_seconds=0.2,
        retry_max_seconds=0.5,
        send_timeout=2,
    )
    service = Hl7Service(config, settings, outbox_poll=0.1).start()
    with transaction(service.sessions) as s:
        seed_default_catalog(s)
    yield service
    service.stop()
    set_settings(None)
