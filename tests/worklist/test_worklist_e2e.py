"""Worklist rules end to end: real Orthanc with our plugin, dcmtk's findscu as the scanner,
the RIS behind it. Character sets, steps on several stations, the station rule, the
answer cap and the explainer seeing the scanner's query."""

from __future__ import annotations

import pytest

from ris_app.clock import site_today
from tests.conftest import start_system, stop_system
from tests.fixtures.mwl import run_findscu, write_query

pytestmark = pytest.mark.e2e
TODAY = site_today()


def _patient(system, mrn, family, given=""):
    r = system.api(
        "POST",
        "/api/patients",
        json={"mrn": mrn, "family_name": family, "given_name": given, "birth_date": "1970-01-01", "sex": "O"},
    )
    assert r.status_code == 201, r.text


def _order(system, mrn, aet, at="10:00"):
    return system.place_order(mrn, f"{TODAY}T{at}", modality="CT", station_aet=aet)


@pytest.mark.parametrize(
    "mrn, family, given, charset",
    [
        ("CS-LATIN1", "Müller", "Jürgen", "ISO_IR 100"),
        ("CS-UTF8", "Øster", "Ærø", "ISO_IR 192"),
        ("CS-GREEK", "Παπαδόπουλος", "Νίκος", "ISO_IR 192"),
        ("CS-CJK", "王", "小明", "ISO_IR 192"),
        ("CS-JP", "山田", "太郎", "ISO_IR 192"),
    ],
)
def test_names_keep_their_script(system, tmp_path, mrn, family, given, charset):
    _patient(system, mrn, family, given)
    acc = _order(system, mrn, "CS1")
    answers = run_findscu(
        system.dicom_port,
        system.aet,
        write_query(tmp_path / "q.dcm", SpecificCharacterSet=charset, AccessionNumber=acc),
        tmp_path / "r",
    )
    assert [str(a.PatientName) for a in answers] == [f"{family}^{given}"]


@pytest.mark.parametrize("pattern, charset", [("Müll*", "ISO_IR 100"), ("王*", "ISO_IR 192"), ("παπα*", "ISO_IR 192")])
def test_name_wildcards_in_any_script(system, tmp_path, pattern, charset):
    for mrn, fam in (("W-L", "Müller"), ("W-C", "王"), ("W-G", "Παπαδόπουλος")):
        if system.api("GET", f"/api/patients/{mrn}").status_code == 404:
            _patient(system, mrn, fam, "X")
            _order(system, mrn, "WILD1")
    answers = run_findscu(
        system.dicom_port,
        system.aet,
        write_query(
            tmp_path / "q.dcm",
            SpecificCharacterSet=charset,
            PatientName=pattern,
            sps={"ScheduledStationAETitle": "WILD1"},
        ),
        tmp_path / "r",
    )
    assert len(answers) == 1


def test_step_on_two_stations_reaches_both_scanners(system, tmp_path):
    _patient(system, "MV-1", "Two", "Stations")
    acc = _order(system, "MV-1", "CTA\\CTB")
    for aet in ("CTA", "CTB"):
        answers = run_findscu(
            system.dicom_port,
            system.aet,
            write_query(tmp_path / "q.dcm", sps={"ScheduledStationAETitle": aet}),
            tmp_path / "r",
        )
        assert [a.AccessionNumber for a in answers] == [acc]
        sps = answers[0].ScheduledProcedureStepSequence[0]
        assert sps.ScheduledStationAETitle == aet and sps.Modality == "CT"


def test_the_desks_order_notes_reach_the_scanner(system, tmp_path):
    _patient(system, "NOTE-1", "Notes", "Order")
    acc = _order(system, "NOTE-1", "NOTE1")
    notes = "Claustrophobic: wide bore. Interpreter: Polish"
    r = system.api("PATCH", f"/api/orders/{acc}", json={"notes": notes})
    assert r.status_code == 200, r.text
    q = write_query(tmp_path / "q.dcm", AccessionNumber=acc, ImagingServiceRequestComments="")
    answers = run_findscu(system.dicom_port, system.aet, q, tmp_path / "r")
    assert [a.ImagingServiceRequestComments for a in answers] == [notes]


def test_station_rule_uses_the_calling_ae_title(system, tmp_path):
    _patient(system, "SR-1", "Station", "Rule")
    mine = _order(system, "SR-1", "OWNAE")
    _order(system, "SR-1", "OTHERAE")
    r = system.api("POST", "/api/stations", json={"aet": "OWNAE", "modality": "CT", "worklist_own_steps_only": True})
    assert r.status_code == 201, r.text
    answers = run_findscu(
        system.dicom_port,
        system.aet,
        write_query(tmp_path / "q.dcm", PatientID="SR-1"),
        tmp_path / "r",
        calling_aet="OWNAE",
    )
    assert [a.AccessionNumber for a in answers] == [mine]
    # The explainer sees that query, with the scanner's AE title, and names the rule.
    logged = system.api("GET", "/api/worklist/queries?calling_aet=OWNAE").json()["items"][0]
    x = system.api("GET", f"/api/worklist/queries/{logged['id']}/explain?accession_number={mine}").json()
    assert x["station_rule"] is True and x["steps"][0]["answered"] is True


@pytest.fixture(scope="module")
def capped_system(tmp_path_factory):
    s = start_system(tmp_path_factory.mktemp("capped"), {"ORTHANC_RIS_WORKLIST_LIMIT": "2"})
    yield s
    stop_system(s)


def test_answer_cap_through_orthanc(capped_system, tmp_path):
    _patient(capped_system, "CAP-1", "Capped", "Answer")
    for at in ("08:00", "09:00", "10:00"):
        _order(capped_system, "CAP-1", "CAP1", at)
    answers = run_findscu(
        capped_system.dicom_port, capped_system.aet, write_query(tmp_path / "q.dcm", PatientID="CAP-1"), tmp_path / "r"
    )
    assert len(answers) == 2
    logged = capped_system.api("GET", "/api/worklist/queries").json()["items"][0]
    assert logged["incomplete"] is True and logged["answers"] == 2


def test_imported_iso_2022_item_through_orthanc(system, tmp_path):
    from tests.worklist.test_worklist_import import item, part10

    ds = item(
        AccessionNumber="E2EJP1",
        sps_id="E2EJPS1",
        StudyInstanceUID="1.2.7.1",
        PatientID="E2E-JP1",
        PatientName="Yamada^Tarou=山田^太郎=やまだ^たろう",
        aet="JPMR1",
    )
    ds.SpecificCharacterSet = ["", "ISO 2022 IR 87"]
    r = system.api("POST", "/api/worklist-items", data=part10(ds), headers={"Content-Type": "application/dicom"})
    assert r.status_code == 201, r.text
    answers = run_findscu(
        system.dicom_port,
        system.aet,
        write_query(tmp_path / "q.dcm", PatientName="山田*", sps={"ScheduledStationAETitle": "JPMR1"}),
        tmp_path / "r",
    )
    assert [str(a.PatientName) for a in answers] == ["Yamada^Tarou=山田^太郎=やまだ^たろう"]
    assert answers[0].ScheduledProcedureStepSequence[0].ScheduledStationAETitle == "JPMR1"


def test_a_lone_star_on_a_date_key_is_refused_by_orthanc(system, tmp_path):
    """docs/dicom-conformance.md: Orthanc 1.10.1's C-FIND SCP refuses `*` on a DA key
    ("Wildcards are not allowed on tag 0040,0002": Failed, Unable to process) before the
    plugin is called; an empty value is the universal match that works."""
    system.add_station("STARSCU", "CT")  # the calling AE: only stations may query
    _patient(system, "STAR-1", "Starling")
    _order(system, "STAR-1", "STAR1")
    before = len(system.api("GET", "/api/worklist/queries", params={"calling_aet": "STARSCU"}).json()["items"])
    star = write_query(
        tmp_path / "star.dcm", sps={"ScheduledStationAETitle": "STAR1", "ScheduledProcedureStepStartDate": "*"}
    )
    proc = system.findscu(star, calling_aet="STARSCU", extra=["-v"])
    assert "UnableToProcess" in proc.stderr, proc.stderr[-2000:]
    logged = system.api("GET", "/api/worklist/queries", params={"calling_aet": "STARSCU"}).json()["items"]
    assert len(logged) == before  # Orthanc refused it before asking the RIS: the RIS cannot make it work
    empty = write_query(
        tmp_path / "empty.dcm", sps={"ScheduledStationAETitle": "STAR1", "ScheduledProcedureStepStartDate": ""}
    )
    answers = run_findscu(system.dicom_port, system.aet, empty, tmp_path / "out", calling_aet="STARSCU")
    assert [a.PatientID for a in answers] == ["STAR-1"]
