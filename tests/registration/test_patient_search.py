"""Finding the patient, against a real database (SQLite, and PostgreSQL with the db marker):
names ignoring accents and case, birth date, MRN and its beginning, phone digits; the keys
written on every path (API, HL7 ADT, the patient page); MRNs compared as the site says
(ORTHANC_RIS_MRN_CASE_INSENSITIVE) on every lookup; the pages and the type-ahead's JSON;
migration 0018_patient_search going both ways with existing patients backfilled."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import MetaData, create_engine, select

from ris_app.model import AuditEvent, Patient
from ris_app.ops import migrate
from ris_app.registration import settings as registration_settings
from ris_app.registration.keys import mrn_key, name_key, phone_digits
from ris_app.registration.search import search_patients
from ris_app.registration.settings import RegistrationSettings
from tests.clock.test_site_zone import _insert, empty_database_url  # noqa: F401  (a fixture)
from tests.fixtures import hl7_messages as H
from tests.fixtures.web import login
from tests.registration.test_registration import _hl7
from tests.tracking.test_tracking import _study
from tests.worklist.test_worklist_rules import _order, accessions, find, query

pytestmark = pytest.mark.db

PEOPLE = (
    ("P2001", "Müller", "Hans", "1970-01-02", "+49 (30) 1234-5678"),
    ("P2002", "MÜLLER", "Anna", "1981-03-04", ""),
    ("X77", "Muller", "Zoë", "1970-01-02", "030 99 88 77"),
    ("P20", "Smith", "Ann", "1990-12-31", ""),
)


@pytest.fixture
def people(client, auth):
    for mrn, family, given, born, phone in PEOPLE:
        body = {"mrn": mrn, "family_name": family, "given_name": given, "birth_date": born, "phone": phone}
        assert client.post("/api/patients", json=body, headers=auth).status_code == 201


@pytest.fixture
def exact_mrns():
    """The site compares MRNs exactly (ORTHANC_RIS_MRN_CASE_INSENSITIVE=false)."""
    registration_settings.use(RegistrationSettings(mrn_case_insensitive=False))
    yield
    registration_settings.use(None)


def _found(app, q: str, limit: int = 20) -> list[str]:
    with app.extensions["ris_sessions"]() as s:
        return [p.mrn for p in search_patients(s, q, limit)]


# ------------------------------------------------------------------ keys (no database)
def test_keys_fold_accents_case_and_phone_punctuation():
    assert name_key("Müller", "Hans") == name_key("MULLER", "hans") == "muller hans"
    assert name_key("O'Brien-Smith", "Zoë") == "obriensmith zoe"
    assert mrn_key(" p2001 ") == "P2001"
    assert phone_digits("+49 (30) 1234-5678") == "4930123456 78".replace(" ", "")


# ------------------------------------------------------------------ the search
@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("muller", ["P2002", "P2001", "X77"]),  # Müller, MÜLLER, Muller; by name, then given name
        ("MÜLL", ["P2002", "P2001", "X77"]),
        ("müller hans", ["P2001"]),
        ("MÜLLER^Hans", ["P2001"]),
        ("Hans Müller", ["P2001"]),  # the words in any order
        ("zoe", ["X77"]),
        ("1970-01-02", ["P2001", "X77"]),
        ("muller 1970-01-02", ["P2001", "X77"]),
        ("1970-02-30", []),  # no such day
        ("p2001", ["P2001"]),  # the exact MRN, any case
        ("p20", ["P20", "P2002", "P2001"]),  # the exact MRN first, then those beginning so, by name
        ("1234-5678", ["P2001"]),  # phone: digits compared
        ("030 99 88 77", ["X77"]),
        ("nobody", []),
        ("   ", []),
        ("50%", []),  # LIKE's wildcards are searched as text
    ],
)
def test_search_finds_by_name_birth_date_mrn_and_phone(app, people, q, expected):
    assert _found(app, q) == expected


def test_search_is_limited(app, people):
    assert len(_found(app, "muller", limit=2)) == 2


def test_the_api_finds_patients_for_integrators(client, auth, people):
    r = client.get("/api/patients", query_string={"q": "mull hans"}, headers=auth)
    assert r.status_code == 200 and [p["mrn"] for p in r.json["items"]] == ["P2001"]
    assert r.json["items"][0]["family_name"] == "Müller"
    assert client.get("/api/patients", headers=auth).json["error"]["field"] == "q"
    assert client.get("/api/patients?q=x&limit=500", headers=auth).status_code == 400
    assert client.get("/api/patients?q=muller").status_code == 401


def test_keys_follow_every_write_hl7_and_page_edit(app, client):
    assert _hl7(app, H.ADT_A01, mrn="HL7-1", family="Ångström", given="Åsa")[0] == "AA"
    assert _found(app, "angstrom asa") == ["HL7-1"]
    assert _hl7(app, H.ADT_A08, mrn="hl7-1", family="Öberg", given="Åsa")[0] == "AA"  # one patient, any case
    assert _found(app, "oberg") == ["HL7-1"] and _found(app, "angstrom") == []
    csrf = login(app, client, "clerk", "clara")
    form = {"csrf_token": csrf, "family_name": "Çelik", "given_name": "Åsa", "birth_date": "1970-01-01", "sex": "F"}
    r = client.post("/patients/HL7-1", data={**form, "phone": "555 0100", "notify_email": "on"})
    assert r.status_code == 302, r.data[:2000]
    assert _found(app, "celik") == ["HL7-1"] and _found(app, "5550100") == ["HL7-1"]
    with app.extensions["ris_sessions"]() as s:
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "patient.update")).all()[-1]
        assert (event.actor, event.patient_mrn, event.outcome) == ("clara", "HL7-1", "success")
        p = s.scalars(select(Patient).where(Patient.mrn == "HL7-1")).one()
        assert (p.notify_email, p.notify_sms) == (True, False)


# ------------------------------------------------------------------ MRNs compared as the site says
def test_mrns_compare_without_case_by_default_on_api_hl7_and_worklist(app, client, auth, people):
    assert client.get("/api/patients/p2001", headers=auth).json["mrn"] == "P2001"  # kept as first written
    r = client.post("/api/patients", json={"mrn": "p2001", "family_name": "Other"}, headers=auth)
    assert r.status_code == 409
    accession = _order(client, auth, "p2001")["accession_number"]
    assert client.get(f"/api/orders/{accession}", headers=auth).json["patient"]["mrn"] == "P2001"
    items, _ = find(client, auth, query(PatientID="p2001", sps={"ScheduledProcedureStepStartDate": "20261128"}))
    assert accessions(items) == [accession]
    assert _hl7(app, H.ADT_A08, mrn="x77", family="Muller", given="Zoe")[0] == "AA"
    with app.extensions["ris_sessions"]() as s:
        assert s.scalar(select(Patient.given_name).where(Patient.mrn == "X77")) == "Zoe"
        assert s.scalars(select(Patient).where(Patient.mrn == "x77")).first() is None


def test_mrns_compare_exactly_when_the_site_says_so(app, client, auth, people, exact_mrns):
    assert client.get("/api/patients/p2001", headers=auth).status_code == 404
    assert client.post("/api/patients", json={"mrn": "p2001", "family_name": "Other"}, headers=auth).status_code == 201
    _order(client, auth, "P2001")
    items, _ = find(client, auth, query(PatientID="p2001", sps={"ScheduledProcedureStepStartDate": "20261128"}))
    assert accessions(items) == []


@pytest.mark.parametrize("attempt", range(2))
def test_one_mrn_registered_at_once_in_four_cases_makes_one_patient(app, auth, attempt):
    """Four desks register one new MRN at the same moment, each typing it in another case:
    the exact-case unique constraint sees four MRNs; the lock on the compared MRN lets one
    in and the others find it (409), on SQLite and on PostgreSQL."""
    spellings = [f"race-{attempt}", f"RACE-{attempt}", f"Race-{attempt}", f"rACE-{attempt}"]
    barrier = threading.Barrier(len(spellings))
    answers: list[int] = []

    def desk(mrn: str) -> None:
        c = app.test_client()
        barrier.wait()
        answers.append(c.post("/api/patients", json={"mrn": mrn, "family_name": "Race"}, headers=auth).status_code)

    threads = [threading.Thread(target=desk, args=(m,)) for m in spellings]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(answers) == [201, 409, 409, 409]
    with app.extensions["ris_sessions"]() as s:
        assert len(s.scalars(select(Patient).where(Patient.mrn_key == f"RACE-{attempt}")).all()) == 1


# ------------------------------------------------------------------ pages
def test_search_page_lookup_json_and_patient_page(app, client, auth, people):
    accession = _order(client, auth, "P2001")["accession_number"]
    twin = {"mrn": "D1", "family_name": "MULLER", "given_name": "hans", "birth_date": "1970-01-02"}
    assert client.post("/api/patients", json=twin, headers=auth).status_code == 201
    _study(client, auth, uid="9.9.9.1", oid="o-unlinked", pid="p2001", name="MULLER^HANS")  # no accession: unlinked
    login(app, client, "technologist", "tom")
    page = client.get("/patients?q=muller").get_data(as_text=True)
    assert 'id="patient-results"' in page and "/patients/P2001" in page and "Zoë" in page
    assert "No patient matches" in client.get("/patients?q=nobody").get_data(as_text=True)
    items = client.get("/patients/lookup?q=mull").json["items"]
    assert [i["mrn"] for i in items] == ["P2002", "P2001", "D1", "X77"]  # muller anna, hans, hans, zoe
    assert items[1] == {
        "mrn": "P2001",
        "name": "Müller, Hans",
        "birth_date": "1970-01-02",
        "sex": "U",
        "merged_into": "",
        "url": "/patients/P2001",
    }
    page = client.get("/patients/p2001").get_data(as_text=True)  # any case
    assert "MRN P2001" in page and accession in page and "/patients/P2001/record" in page
    assert 'id="patient-studies"' in page and "2026-11-28" in page  # its images sent under p2001
    assert "Likely duplicates" in page and "/patients/D1" in page  # same birth date, name folded alike
    assert 'id="patient-edit"' not in page  # technologists read, the desk corrects
    assert client.post("/patients/P2001", data={"family_name": "X"}).status_code in (400, 403)
    assert client.get("/patients/NOPE").status_code == 404
    with app.extensions["ris_sessions"]() as s:
        reads = s.scalars(select(AuditEvent.patient_mrn).where(AuditEvent.action == "patient.read")).all()
    assert "p2001" in reads or "P2001" in reads


def test_order_form_and_merge_form_carry_the_type_ahead(app, client):
    login(app, client, "admin")
    for path in ("/orders/new", "/patients/merge"):
        page = client.get(path).get_data(as_text=True)
        assert 'data-patient-search="mrn"' in page and "patients.js" in page, path
    assert client.get("/static/patients.js").status_code == 200


# ------------------------------------------------------------------ migration
@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection")  # 0002's expression index
def test_migration_backfills_the_keys_and_goes_both_ways(empty_database_url):  # noqa: F811
    migrate.upgrade(empty_database_url, "0017_analytics")
    engine = create_engine(empty_database_url)
    meta = MetaData()
    meta.reflect(engine)
    with engine.begin() as conn:
        _insert(conn, meta.tables["patient"], mrn="m-1", family_name="Müller", given_name="Jürgen", phone="(030) 12-34")
    migrate.upgrade(empty_database_url, "0018_patient_search")
    meta = MetaData()
    meta.reflect(engine)
    pt = meta.tables["patient"]
    with engine.begin() as conn:
        row = conn.execute(select(pt.c.name_key, pt.c.mrn_key, pt.c.phone_digits)).one()
    assert tuple(row) == ("muller jurgen", "M-1", "0301234")
    migrate.downgrade(empty_database_url, "0017_analytics")
    meta = MetaData()
    meta.reflect(engine)
    assert "name_key" not in meta.tables["patient"].c
    migrate.upgrade(empty_database_url, "0018_patient_search")
    engine.dispose()
