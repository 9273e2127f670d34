"""Worklist rules against a real database, through the endpoint the Orthanc plugin calls:
matching, statuses, the per-station rule, the answer cap, staying right when an order
changes between queries, the C-FIND log and the query explainer."""

from __future__ import annotations

import io
import logging
import struct

import pydicom
import pytest
from pydicom.dataset import Dataset

from ris_app.worklist.matching import combined_start_matches, value_matches

pytestmark = pytest.mark.db
DAY = "2026-11-28"


def _patient(client, auth, mrn, family="Doe", given="Jane", **extra):
    r = client.post(
        "/api/patients",
        json={"mrn": mrn, "family_name": family, "given_name": given, "birth_date": "1980-05-06", "sex": "F", **extra},
        headers=auth,
    )
    assert r.status_code == 201, r.json


def _order(client, auth, mrn, aet="CT1", at="10:00", day=DAY, **extra):
    r = client.post(
        "/api/orders",
        json={
            "mrn": mrn,
            "procedure_code": "CTHEAD",
            "modality": "CT",
            "station_aet": aet,
            "scheduled_start": f"{day}T{at}",
            **extra,
        },
        headers=auth,
    )
    assert r.status_code == 201, r.json
    return r.json


def query(charset: str = "ISO_IR 192", sps: dict | None = None, **top) -> bytes:
    """A C-FIND MWL identifier as the plugin forwards it (no file meta needed)."""
    ds = Dataset()
    ds.SpecificCharacterSet = charset
    for key in ("PatientName", "PatientID", "AccessionNumber", "StudyInstanceUID"):
        setattr(ds, key, top.get(key, ""))
    item = Dataset()
    for key in (
        "Modality",
        "ScheduledStationAETitle",
        "ScheduledProcedureStepStartDate",
        "ScheduledProcedureStepStartTime",
        "ScheduledProcedureStepStatus",
        "ScheduledProcedureStepID",
    ):
        setattr(item, key, (sps or {}).get(key, ""))
    ds.ScheduledProcedureStepSequence = [item]
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, implicit_vr=False, little_endian=True)
    return buf.getvalue()


def find(client, auth, q: bytes, calling="SCANNER"):
    r = client.post(
        "/api/internal/worklist/find", data=q, headers={**auth, "X-Calling-AET": calling, "X-Called-AET": "RISPACS"}
    )
    assert r.status_code == 200, r.data[:300]
    items, pos = [], 0
    while pos < len(r.data):
        (n,) = struct.unpack_from(">I", r.data, pos)
        items.append(pydicom.dcmread(io.BytesIO(r.data[pos + 4 : pos + 4 + n])))
        pos += 4 + n
    return items, r.headers["X-Worklist-Incomplete"] == "1"


def accessions(items) -> list[str]:
    return sorted(i.AccessionNumber for i in items)


# ---------------------------------------------------------------- pure matching rules
@pytest.mark.parametrize(
    "q, vr, value, expected",
    [
        ("王^小明", "PN", "Wang^Xiaoming=王^小明=ワン^シャオミン", True),  # any component group
        ("wang^*", "PN", "Wang^Xiaoming=王^小明", True),
        ("Wang", "PN", "Wang^Xiaoming", False),  # single value: the whole name
        ("1.2.3\\1.2.4", "UI", "1.2.4", True),  # list of UIDs
        ("1.2.*", "UI", "1.2.4", False),  # no wildcards on UI
        ("C?", "CS", "CT", True),
        ("ct", "CS", "CT", False),  # case-sensitive except PN
        ("-", "DA", "20261128", True),
    ],
)
def test_more_value_rules(q, vr, value, expected):
    assert value_matches(q, vr, value, multi_valued=vr != "UI") is expected


@pytest.mark.parametrize(
    "date_q, time_q, date_v, time_v, expected",
    [
        ("20261127-20261128", "2200-0600", "20261127", "233000", True),  # overnight, combined
        ("20261127-20261128", "2200-0600", "20261128", "053000", True),
        ("20261127-20261128", "2200-0600", "20261128", "073000", False),
        ("20261127-20261128", "2200-0600", "20261127", "083000", False),
        ("20261128", "0800-1000", "20261128", "093000", True),
        ("20261128-", "1200-", "20261129", "010000", True),
    ],
)
def test_combined_start_date_and_time(date_q, time_q, date_v, time_v, expected):
    assert combined_start_matches(date_q, time_q, date_v, time_v) is expected


# ---------------------------------------------------------------- through the endpoint
def test_step_on_two_stations_matches_either(client, auth):
    _patient(client, auth, "P1")
    both = _order(client, auth, "P1", aet="CT1\\CT2")["accession_number"]
    _order(client, auth, "P1", aet="CT3")
    items, _ = find(client, auth, query(sps={"ScheduledStationAETitle": "CT2"}))
    assert accessions(items) == [both]
    # The answer carries the matched station (Orthanc 1.10 would drop the SPS item otherwise).
    assert items[0].ScheduledProcedureStepSequence[0].ScheduledStationAETitle == "CT2"


def test_default_statuses_and_asked_status(client, auth):
    _patient(client, auth, "P1")
    waiting = _order(client, auth, "P1")["accession_number"]
    started = _order(client, auth, "P1")["accession_number"]
    assert client.post(f"/api/orders/{started}/status", json={"action": "start"}, headers=auth).status_code == 200
    items, _ = find(client, auth, query())
    assert accessions(items) == [waiting]
    items, _ = find(client, auth, query(sps={"ScheduledProcedureStepStatus": "STARTED"}))
    assert accessions(items) == [started]
    items, _ = find(client, auth, query(sps={"ScheduledProcedureStepStatus": "SCHEDULED\\STARTED"}))
    assert accessions(items) == sorted([waiting, started])


def test_station_rule_answers_only_own_steps_when_no_station_asked(client, auth):
    _patient(client, auth, "P1")
    mine = _order(client, auth, "P1", aet="MR1")["accession_number"]
    other = _order(client, auth, "P1", aet="MR2")["accession_number"]
    r = client.post(
        "/api/stations", json={"aet": "MR1", "modality": "MR", "worklist_own_steps_only": True}, headers=auth
    )
    assert r.status_code == 201, r.json
    assert accessions(find(client, auth, query(), calling="MR1")[0]) == [mine]
    # Naming a station overrides the rule; other scanners are not affected.
    assert accessions(find(client, auth, query(sps={"ScheduledStationAETitle": "MR2"}), calling="MR1")[0]) == [other]
    assert accessions(find(client, auth, query(), calling="MR9")[0]) == sorted([mine, other])
    r = client.patch("/api/stations/MR1", json={"worklist_own_steps_only": False}, headers=auth)
    assert r.status_code == 200 and r.json["worklist_own_steps_only"] is False
    assert accessions(find(client, auth, query(), calling="MR1")[0]) == sorted([mine, other])


def test_answer_cap_marks_incomplete(app, client, auth):
    _patient(client, auth, "P1")
    for i in range(5):
        _order(client, auth, "P1", at=f"1{i}:00")
    cfg = app.config["RIS"]
    app.config["RIS"] = type(cfg)(**{**cfg.__dict__, "worklist_limit": 3})
    try:
        items, incomplete = find(client, auth, query())
    finally:
        app.config["RIS"] = cfg
    assert len(items) == 3 and incomplete
    items, incomplete = find(client, auth, query())
    assert len(items) == 5 and not incomplete


def test_answer_follows_order_changes_between_queries(client, auth):
    _patient(client, auth, "P1", family="Before")
    acc = _order(client, auth, "P1")["accession_number"]
    q = query(AccessionNumber=acc)
    assert str(find(client, auth, q)[0][0].PatientName) == "Before^Jane"
    assert client.patch("/api/patients/P1", json={"family_name": "After"}, headers=auth).status_code == 200
    assert str(find(client, auth, q)[0][0].PatientName) == "After^Jane"
    assert client.post(f"/api/orders/{acc}/status", json={"action": "arrive"}, headers=auth).status_code == 200
    assert find(client, auth, q)[0][0].ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus == "ARRIVED"
    assert client.post(f"/api/orders/{acc}/status", json={"action": "cancel"}, headers=auth).status_code == 200
    assert find(client, auth, q)[0] == []


def test_every_k61_return_key_is_answered(client, auth):
    from ris_app.worklist.attributes import WORKLIST_ATTRIBUTES

    _patient(client, auth, "P1")
    _order(client, auth, "P1")
    item = find(client, auth, query())[0][0]
    sps = item.ScheduledProcedureStepSequence[0]
    missing = [a.keyword for a in WORKLIST_ATTRIBUTES if a.vr != "SQ" and a.keyword not in (sps if a.in_sps else item)]
    assert missing == []


def test_log_holds_key_names_not_patient_data(client, auth, caplog):
    _patient(client, auth, "SECRET-MRN", family="Secretname")
    with caplog.at_level(logging.INFO, logger="ris_app"):
        find(client, auth, query(PatientName="Secretname*", PatientID="SECRET-MRN"))
    text = "\n".join(r.getMessage() for r in caplog.records if r.levelno > logging.DEBUG)
    assert "PatientName" in text
    assert "Secret" not in text and "SECRET" not in text


def test_explainer_says_which_key_kept_each_step_out(client, auth):
    _patient(client, auth, "P1", family="Müller")
    today = _order(client, auth, "P1", aet="CT1", at="09:00")["accession_number"]
    tomorrow = _order(client, auth, "P1", aet="CT1", day="2026-11-29")["accession_number"]
    started = _order(client, auth, "P1", aet="CT1", at="11:00")["accession_number"]
    client.post(f"/api/orders/{started}/status", json={"action": "start"}, headers=auth)
    find(
        client,
        auth,
        query(charset="", sps={"ScheduledStationAETitle": "CT1", "ScheduledProcedureStepStartDate": "20261128"}),
        calling="CT1",
    )
    logged = client.get("/api/worklist/queries?calling_aet=CT1", headers=auth).json["items"]
    assert logged[0]["answers"] == 1 and logged[0]["calling_aet"] == "CT1"
    r = client.get(f"/api/worklist/queries/{logged[0]['id']}/explain", headers=auth)
    assert r.status_code == 200, r.json
    steps = {s["accession_number"]: s for s in r.json["steps"]}
    assert steps[today]["answered"] is True
    assert [x["rule"] for x in steps[tomorrow]["reasons"]] == ["date range"]
    assert steps[tomorrow]["reasons"][0]["asked"] == "20261128"
    assert [x["rule"] for x in steps[started]["reasons"]] == ["status"]
    # No character set in the query: the default repertoire cannot carry "Müller".
    assert steps[today]["notes"][0]["rule"] == "charset" and "PatientName" in steps[today]["notes"][0]["keys"]
    assert client.get("/api/worklist/queries/999/explain", headers=auth).status_code == 404
    assert client.get(f"/api/worklist/queries/{logged[0]['id']}/explain").status_code == 401


def test_explainer_names_the_station_rule(client, auth):
    _patient(client, auth, "P1")
    other = _order(client, auth, "P1", aet="US2")["accession_number"]
    client.post("/api/stations", json={"aet": "US1", "modality": "US", "worklist_own_steps_only": True}, headers=auth)
    find(client, auth, query(), calling="US1")
    qid = client.get("/api/worklist/queries", headers=auth).json["items"][0]["id"]
    r = client.get(f"/api/worklist/queries/{qid}/explain?accession_number={other}", headers=auth).json
    assert r["station_rule"] is True
    assert [x["rule"] for x in r["steps"][0]["reasons"]] == ["station rule"]


def test_explainer_page(app, client, auth):
    from tests.fixtures.web import login

    _patient(client, auth, "P1")
    _order(client, auth, "P1", aet="CT1")
    find(client, auth, query(sps={"ScheduledStationAETitle": "CT9"}), calling="CT1")
    assert client.get("/worklist/queries").status_code in (302, 401)
    login(app, client, "technologist")
    page = client.get("/worklist/queries")
    assert page.status_code == 200 and b"CT1" in page.data
    qid = client.get("/api/worklist/queries", headers=auth).json["items"][0]["id"]
    page = client.get(f"/worklist/queries/{qid}")
    assert page.status_code == 200
    assert b"AE title" in page.data and b"CT9" in page.data


@pytest.mark.parametrize(
    "pattern, found",
    [
        ("doe*", True),
        ("DOE^JANE", True),
        ("D?e^*", True),
        ("*oe", False),
        ("*oe^Jane", True),
        ("Do", False),
        ("Dox*", False),
    ],
)
def test_name_prefilter_keeps_every_match(client, auth, pattern, found):
    _patient(client, auth, "P1", family="Doe", given="Jane")
    acc = _order(client, auth, "P1")["accession_number"]
    assert accessions(find(client, auth, query(PatientName=pattern))[0]) == ([acc] if found else [])


def test_query_log_is_pruned_after_its_keep_days(app, client, auth, monkeypatch):
    from datetime import timedelta

    from ris_app.clock import utcnow
    from ris_app.model import WorklistQueryLog
    from ris_app.worklist import explain as worklist_explain

    monkeypatch.setattr(worklist_explain, "_PRUNE_EVERY", 1)
    with app.extensions["ris_sessions"]() as s:
        s.add(WorklistQueryLog(calling_aet="OLD", query={}, received_at=utcnow() - timedelta(days=40)))
        s.commit()
    find(client, auth, query(), calling="NEW")
    assert [e["calling_aet"] for e in client.get("/api/worklist/queries", headers=auth).json["items"]] == ["NEW"]


def test_explainer_spots_utf8_sent_as_latin1(client, auth):
    _patient(client, auth, "P1", family="Müller", given="Jürgen")
    acc = _order(client, auth, "P1", aet="CT1")["accession_number"]
    q = pydicom.dcmread(io.BytesIO(query(charset="ISO_IR 100")), force=True)
    q.PatientName = "Müller*".encode().decode("latin-1")  # what a misconfigured scanner sends
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, q, implicit_vr=False, little_endian=True)
    assert find(client, auth, buf.getvalue(), calling="CT1")[0] == []
    qid = client.get("/api/worklist/queries", headers=auth).json["items"][0]["id"]
    x = client.get(f"/api/worklist/queries/{qid}/explain?accession_number={acc}", headers=auth).json
    reason = x["steps"][0]["reasons"][0]
    assert reason["rule"] == "charset" and "Müller*" in reason["why"]
