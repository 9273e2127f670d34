"""Malformed requests, tried as a fuzzer would (issue 17): each is answered 400 naming the
field, none is a 500, and nothing of it is stored."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from ris_app.model import Order, Patient

pytestmark = pytest.mark.db

PATIENT = {"mrn": "M1", "family_name": "Doe", "given_name": "Jane", "birth_date": "1980-05-06", "sex": "F"}
ORDER = {"mrn": "M1", "procedure_code": "CTHEAD", "modality": "CT", "scheduled_start": "2026-11-28T10:15:00"}


def _count(app, model) -> int:
    with app.extensions["ris_sessions"]() as s:
        return s.scalar(select(func.count()).select_from(model))


@pytest.mark.parametrize(
    "over, field",
    [
        ({"family_name": "X\ud800Y"}, "family_name"),
        ({"given_name": "X\udfffY"}, "given_name"),
        ({"birth_date": "2999-01-01"}, "birth_date"),
        ({"mrn": "A\x7fB"}, "mrn"),
        ({"mrn": "A\x85B"}, "mrn"),
        ({"mrn": "A\x01B"}, "mrn"),
        ({"family_name": "Do\x7fe"}, "family_name"),
        ({"family_name": "Do\x85e"}, "family_name"),
        ({"mrn": "A/B"}, "mrn"),
    ],
)
def test_malformed_patient_is_400_naming_the_field_and_not_stored(app, client, auth, over, field):
    r = client.post("/api/patients", json={**PATIENT, **over}, headers=auth)
    assert r.status_code == 400, r.json
    assert r.json["error"]["field"] == field
    assert _count(app, Patient) == 0


@pytest.mark.parametrize(
    "over, field",
    [
        ({"study_instance_uid": "1.02.3"}, "study_instance_uid"),
        ({"study_instance_uid": "1..3"}, "study_instance_uid"),
        ({"modality": "XX"}, "modality"),
        ({"reason_for_exam": "X\ud800Y"}, "reason_for_exam"),
        ({"reason_for_exam": "pa\x85in"}, "reason_for_exam"),
    ],
)
def test_malformed_order_is_400_naming_the_field_and_not_stored(app, client, auth, over, field):
    assert client.post("/api/patients", json=PATIENT, headers=auth).status_code == 201
    r = client.post("/api/orders", json={**ORDER, **over}, headers=auth)
    assert r.status_code == 400, r.json
    assert r.json["error"]["field"] == field
    assert _count(app, Order) == 0


def test_uid_components_of_zero_are_fine(client, auth):
    assert client.post("/api/patients", json=PATIENT, headers=auth).status_code == 201
    r = client.post("/api/orders", json={**ORDER, "study_instance_uid": "1.0.30.4"}, headers=auth)
    assert r.status_code == 201, r.json


@pytest.mark.parametrize("body", [{"family_name": None}, {"family_name": ""}, {"family_name": "X\ud800"}])
def test_patch_cannot_empty_or_corrupt_the_family_name(client, auth, body):
    assert client.post("/api/patients", json=PATIENT, headers=auth).status_code == 201
    r = client.patch("/api/patients/M1", json=body, headers=auth)
    assert r.status_code == 400 and r.json["error"]["field"] == "family_name", r.json
    assert client.get("/api/patients/M1", headers=auth).json["family_name"] == "Doe"


def test_patch_birth_date_in_the_future_is_refused(client, auth):
    assert client.post("/api/patients", json=PATIENT, headers=auth).status_code == 201
    r = client.patch("/api/patients/M1", json={"birth_date": "2999-01-01"}, headers=auth)
    assert r.status_code == 400 and r.json["error"]["field"] == "birth_date"


def test_deeply_nested_json_is_400(client, auth):
    deep = "[" * 100_000 + "]" * 100_000
    r = client.post("/api/patients", data=deep, content_type="application/json", headers=auth)
    assert r.status_code == 400, r.data[:200]
    assert r.json["error"]["field"] == "body"


@pytest.mark.parametrize(
    "method, path",
    [
        ("post", "/api/corrections/{n}/undo"),
        ("get", "/api/orthanc-tasks/{n}"),
        ("get", "/api/worklist/queries/{n}/explain"),
        ("get", "/api/reports/{n}/versions/1/pdf"),
        ("get", "/api/reports/1/versions/{n}/pdf"),
    ],
)
def test_ids_beyond_the_id_columns_are_400(client, auth, method, path):
    """Ids are INTEGER columns (32 bits on PostgreSQL): a larger id in a path is the
    client's error, not a database error (the same on SQLite and PostgreSQL)."""
    for n in (2**31, 2**63, 2**64):
        r = getattr(client, method)(path.format(n=n), headers=auth)
        assert r.status_code == 400, r.data[:300]
        assert r.json["error"]["field"]
    r = getattr(client, method)(path.format(n=2**31 - 1), headers=auth)
    assert r.status_code in (404, 409), r.data[:300]


def test_unknown_modality_is_refused_for_catalog_and_stations(client, auth):
    r = client.post("/api/procedure-codes", json={"code": "X1", "description": "x", "modality": "XX"}, headers=auth)
    assert r.status_code == 400 and r.json["error"]["field"] == "modality"
    r = client.post("/api/stations", json={"aet": "XX1", "modality": "XX"}, headers=auth)
    assert r.status_code == 400 and r.json["error"]["field"] == "modality"
