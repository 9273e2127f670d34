"""Reason-for-exam diagnosis codes arrive with the order (every DG1 of an ORM^O01, over a
real MLLP socket) and are billed with its charges."""

from __future__ import annotations

import pytest

from tests.fixtures.hl7_messages import ORM_O01_NW, build
from tests.fixtures.hl7_peer import msa, send
from tests.fixtures.hl7_service import hl7, receiver  # noqa: F401  (fixtures)

pytestmark = pytest.mark.db
WITH_DG1 = ORM_O01_NW + "DG1|1||R51^Headache^I10||||W\nDG1|2||G43.9^Migraine^I10||||W\n"


def test_dg1_codes_reach_the_order(hl7, client, auth):  # noqa: F811
    ack = send(hl7.port, build(WITH_DG1, mrn="DG1-1", acc="ACCDG1"))
    assert msa(ack)[0] == "AA", ack
    order = client.get("/api/orders/ACCDG1", headers=auth).get_json()
    assert order["diagnosis_codes"] == "R51~G43.9"
