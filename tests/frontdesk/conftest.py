"""A department in Europe/Paris (not UTC, and its clocks change on 2027-03-28) with CT1
open 08:00-10:00 every day and a registered patient."""

from __future__ import annotations

import pytest

from ris_app.db import transaction
from ris_app.web.tokens import create_token
from tests.conftest import TOKEN

ZONE = "Europe/Paris"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
EVERY_DAY_8_TO_10 = [{"weekday": d, "opens": "08:00", "closes": "10:00"} for d in range(7)]


@pytest.fixture(autouse=True)
def _site_in_paris(monkeypatch):
    """The root `config` fixture reads the site zone from the environment."""
    monkeypatch.setenv("ORTHANC_RIS_TIMEZONE", ZONE)


@pytest.fixture
def client(app):
    c = app.test_client()
    for aet in ("CT1", "CT2", "MR1"):
        r = c.post("/api/stations", json={"aet": aet, "modality": aet[:2]}, headers=ADMIN)
        assert r.status_code == 201, r.json
    r = c.put("/api/stations/CT1/hours", json={"hours": EVERY_DAY_8_TO_10}, headers=ADMIN)
    assert r.status_code == 200, r.json
    r = c.post("/api/patients", json={"mrn": "FD1", "family_name": "Desk", "given_name": "Fran"}, headers=ADMIN)
    assert r.status_code == 201, r.json
    return c


@pytest.fixture
def integrator(app):
    with transaction(app.extensions["ris_sessions"]) as s:
        secret = create_token(s, "ehr", "integrator")
    return {"Authorization": f"Bearer {secret}"}


def place(client, start: str, aet: str = "CT1", code: str = "CTHEAD", headers=None, **more):
    body = {"mrn": "FD1", "procedure_code": code, "station_aet": aet, "scheduled_start": start, **more}
    return client.post("/api/orders", json=body, headers=headers or ADMIN)


def slots(client, day: str, code: str = "CTHEAD", **args) -> list[tuple[str, str, str]]:
    r = client.get("/api/availability", query_string={"date": day, "procedure_code": code, **args}, headers=ADMIN)
    assert r.status_code == 200, r.json
    return [(s["start"], s["end"], s["station_aet"]) for s in r.json["slots"]]
