"""The report lifecycle, the reading worklist and priors, the report outputs (PDF,
Encapsulated PDF): database-level tests (re-run on PostgreSQL by .ci/run)."""

from __future__ import annotations

import io
import shutil
import subprocess
from datetime import UTC, datetime, timedelta

import pydicom
import pytest
from pypdf import PdfReader
from sqlalchemy import select

from ris_app.db import transaction
from ris_app.errors import Conflict, DomainError
from ris_app.model import ADDENDUM, DRAFT, FINAL, PRELIMINARY, ProcedureCode, ReportTemplate, Study
from ris_app.reporting import lifecycle as r
from ris_app.reporting import reading_list as rl
from ris_app.reporting.documents import (
    BASIC_TEXT_SR_STORAGE,
    ENCAPSULATED_PDF_STORAGE,
    basic_text_sr,
    dicom_bytes,
    encapsulated_pdf,
    report_series_uid,
)
from ris_app.reporting.header import header_for
from ris_app.reporting.pdf import render_pdf
from ris_app.scheduling.orders import OrderData, PatientData, create_order, create_patient
from ris_app.web.auth import create_user

pytestmark = pytest.mark.db
T0 = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)


@pytest.fixture
def s(app):
    session = app.extensions["ris_sessions"]()
    yield session
    session.rollback()
    session.close()


def _user(s, name="rad1", role="radiologist"):
    return create_user(s, name, "password-123", role, full_name=f"Dr {name.capitalize()}")


def _patient(s, mrn="P1", family="Müller", given="Anna"):
    return create_patient(
        s, PatientData(mrn=mrn, family_name=family, given_name=given, birth_date=datetime(1960, 5, 4).date(), sex="F")
    )


def _study(s, patient=None, *, code="CTHEAD", priority="ROUTINE", received=T0, mrn="", reason="headache"):
    order = None
    if patient is not None:
        proc = s.scalar(select(ProcedureCode).where(ProcedureCode.code == code))
        order = create_order(
            s,
            OrderData(
                patient=patient,
                procedure=proc,
                modality=proc.modality,
                scheduled_start=received,
                station_aet="CT1",
                priority=priority,
                reason_for_exam=reason,
            ),
            accession_prefix="T",
            uid_root="",
        )
    n = s.query(Study).count() + 1
    study = Study(
        study_instance_uid=f"1.2.3.{n}",
        orthanc_id=f"orthanc-{n}",
        order_id=order.id if order else None,
        accession_number=order.accession_number if order else f"X{n}",
        patient_mrn=patient.mrn if patient else mrn,
        patient_name="Müller^Anna",
        study_date="20261128",
        modalities="CT",
        series_count=1,
        instance_count=3,
        first_received_at=received,
        last_received_at=received,
    )
    s.add(study)
    s.flush()
    return study


def test_report_starts_from_the_procedure_template_with_the_indication(s):
    user, study = _user(s), _study(s, _patient(s))
    report = r.start_report(s, study, user)
    v = r.current_version(report)
    assert (report.status, v.status, v.version, v.kind) == (DRAFT, DRAFT, 1, "ORIGINAL")
    assert v.indication == "headache"
    assert "without intravenous contrast" in v.technique
    assert "Haemorrhage" in v.findings
    assert r.start_report(s, study, user) is report  # one report per study


def test_template_falls_back_to_the_modality_then_generic(s):
    r.seed_default_templates(s)
    study = _study(s, mrn="ANON")
    study.modalities = "MR"
    assert r.template_for(s, study).name == "MR"
    study.modalities = "XA"
    assert r.template_for(s, study).name == "Generic"
    s.add(ReportTemplate(procedure_code="", modality="XA", name="Angio", technique="Catheter angiography."))
    assert r.template_for(s, study).name == "Angio"


def test_draft_preliminary_final_then_frozen(s):
    user, study = _user(s), _study(s, _patient(s))
    report = r.start_report(s, study, user)
    r.save_report(s, report, user, {"findings": "No bleed.", "impression": ""}, "draft")
    with pytest.raises(DomainError, match="impression"):
        r.save_report(s, report, user, {}, "sign")
    v = r.save_report(s, report, user, {"impression": "Normal head CT."}, "preliminary")
    assert report.status == PRELIMINARY and v.preliminary_by_id == user.id and v.preliminary_at
    v = r.save_report(s, report, user, {"findings": "No bleed.\r\nNo mass."}, "sign")
    assert report.status == FINAL and v.signed_by_id == user.id and v.signed_at and report.finalized_at
    assert v.findings == "No bleed.\nNo mass."
    with pytest.raises(DomainError) as err:
        r.save_report(s, report, user, {"impression": "changed"}, "draft")
    assert isinstance(err.value, Conflict)
    assert v.impression == "Normal head CT."


def test_addenda_are_new_versions_and_keep_the_original(s):
    user, other = _user(s), _user(s, "rad2")
    report = r.start_report(s, _study(s, _patient(s)), user)
    original = r.save_report(s, report, user, {"impression": "Normal."}, "sign")
    with pytest.raises(DomainError):
        r.start_report(s, report.study, user) and r.save_report(s, report, user, {"impression": "x"})
    add = r.start_addendum(s, report, other)
    assert (add.version, add.kind, add.status) == (2, ADDENDUM, DRAFT)
    assert r.start_addendum(s, report, other) is add  # one open addendum at a time
    with pytest.raises(DomainError, match="empty"):
        r.save_report(s, report, other, {"addendum": " "}, "sign")
    with pytest.raises(DomainError, match="preliminary"):
        r.save_report(s, report, other, {"addendum": "x"}, "preliminary")
    r.save_report(s, report, other, {"addendum": "Small left frontal contusion on review."}, "sign")
    assert [v.version for v in r.signed_versions(report)] == [1, 2]
    assert original.impression == "Normal." and report.status == FINAL
    text = r.report_text(report)
    assert text[-1][0].startswith("Addendum 1") and "contusion" in text[-1][1]
    assert len(r.report_text(report, upto=original)) == 4


def test_addendum_needs_a_signed_report(s):
    user = _user(s)
    report = r.start_report(s, _study(s, _patient(s)), user)
    with pytest.raises(DomainError) as err:
        r.start_addendum(s, report, user)
    assert isinstance(err.value, Conflict)


def test_critical_result_records_who_how_when(s):
    user = _user(s)
    report = r.start_report(s, _study(s, _patient(s)), user)
    when = datetime(2026, 11, 28, 9, 15, tzinfo=UTC)
    c = r.record_critical_result(
        s, report, user, communicated_to="Dr Who, ED", method="phone", communicated_at=when, note="read back"
    )
    assert report.critical and (c.communicated_to, c.method, c.communicated_at, c.recorded_by_id) == (
        "Dr Who, ED",
        "phone",
        when,
        user.id,
    )
    with pytest.raises(DomainError, match="method"):
        r.record_critical_result(s, report, user, communicated_to="x", method="telepathy")
    with pytest.raises(DomainError, match="who"):
        r.record_critical_result(s, report, user, communicated_to=" ", method="phone")


def test_reading_worklist_order_filters_and_priors(s):
    user = _user(s)
    p1, p2 = _patient(s), _patient(s, "P2", "Other", "Bob")
    old_routine = _study(s, p1, received=T0 - timedelta(days=2))
    new_stat = _study(s, p2, priority="STAT", received=T0)
    old_high = _study(s, p1, priority="HIGH", received=T0 - timedelta(hours=1))
    unmatched = _study(s, mrn="P1", received=T0 - timedelta(days=3))  # same patient by PatientID
    signed = _study(s, p1, received=T0 - timedelta(days=30))
    rep = r.start_report(s, signed, user)
    r.save_report(s, rep, user, {"impression": "Old."}, "sign")
    empty = _study(s, p2)
    empty.instance_count = 0

    rows = rl.reading_worklist(s, rl.ReadingFilters())
    assert [row.study.id for row in rows] == [new_stat.id, old_high.id, unmatched.id, old_routine.id]
    prior_ids = {st.id: (rp.status if rp else None) for st, rp in rows[1].priors}
    assert prior_ids == {old_routine.id: None, unmatched.id: None, signed.id: FINAL}
    assert {st.id for st, _ in rows[2].priors} == {old_routine.id, old_high.id, signed.id}

    r.save_report(s, r.start_report(s, old_high, user), user, {}, "draft")
    assert [x.study.id for x in rl.reading_worklist(s, rl.ReadingFilters(status=DRAFT))] == [old_high.id]
    assert old_high.id not in [x.study.id for x in rl.reading_worklist(s, rl.ReadingFilters(status=rl.UNREAD))]
    assert [x.study.id for x in rl.reading_worklist(s, rl.ReadingFilters(radiologist_id=user.id))] == [old_high.id]
    assert rl.reading_worklist(s, rl.ReadingFilters(modality="MR")) == []
    day = (T0 - timedelta(days=2)).date()
    assert [x.study.id for x in rl.reading_worklist(s, rl.ReadingFilters(date_from=day, date_to=day))] == [
        old_routine.id
    ]
    assert [p.id for p, _ in rl.priors_of(s, new_stat)] == [empty.id]


def _signed(s):
    user = _user(s)
    study = _study(s, _patient(s))
    report = r.start_report(s, study, user)
    v = r.save_report(
        s,
        report,
        user,
        {"findings": "No acute intracranial haemorrhage.", "impression": "Normal CT of the head."},
        "sign",
    )
    return report, v


def test_pdf_holds_patient_exam_report_and_signature(s):
    report, v = _signed(s)
    pdf = render_pdf(report, v, header_for(report), "Radiology, General Hospital")
    text = PdfReader(io.BytesIO(pdf)).pages[0].extract_text()
    for expected in (
        "Radiology, General Hospital",
        "Müller, Anna",
        "P1",
        "1960-05-04",
        "CT head without contrast",
        report.study.order.accession_number,
        "No acute intracranial haemorrhage.",
        "Normal CT of the head.",
        "electronically signed by Dr Rad1",
    ):
        assert expected in text, expected


def test_encapsulated_pdf_is_valid_for_dciodvfy(s, tmp_path):
    report, v = _signed(s)
    header = header_for(
        report,
        {
            "MainDicomTags": {"StudyTime": "120000", "StudyID": "1"},
            "PatientMainDicomTags": {"PatientName": "MÜLLER^ANNA", "PatientSex": "O", "PatientID": "P1"},
        },
    )
    # The study's identity comes from the images (the instance joins their study); the person
    # is the RIS's record, not what the modality wrote (issue 14: "O" printed for a woman).
    assert (header.patient_name, header.sex, header.birth_date) == ("Müller^Anna", "F", "19600504")
    assert (header.study_time, header.study_id, header.patient_id) == ("120000", "1", "P1")
    pdf = render_pdf(report, v, header)
    ds = encapsulated_pdf(pdf, header, v)
    path = tmp_path / "report.dcm"
    path.write_bytes(dicom_bytes(ds))
    back = pydicom.dcmread(path)
    assert back.SOPClassUID == ENCAPSULATED_PDF_STORAGE
    assert back.StudyInstanceUID == report.study.study_instance_uid
    assert back.AccessionNumber == report.study.order.accession_number
    assert bytes(back.EncapsulatedDocument)[: len(pdf)] == pdf
    if shutil.which("dciodvfy") is None:
        pytest.fail("dciodvfy is missing: run `make setup-test` (Debian dicom3tools)")
    proc = subprocess.run(["dciodvfy", str(path)], check=False, capture_output=True, text=True)
    assert "Error" not in proc.stderr + proc.stdout, proc.stderr
    assert "EncapsulatedPDF" in proc.stderr + proc.stdout


def test_two_readers_opening_one_study_share_its_report(app, monkeypatch):
    factory = app.extensions["ris_sessions"]
    with transaction(factory) as s1:
        user, study = _user(s1), _study(s1, _patient(s1))
    with transaction(factory) as s1:
        first = r.start_report(s1, s1.get(Study, study.id), s1.get(type(user), user.id))
    # The second reader looked before the first one's report existed.
    real, looked = r.report_of, []

    def stale_first_look(s, st):
        looked.append(st.id)
        return None if len(looked) == 1 else real(s, st)

    monkeypatch.setattr(r, "report_of", stale_first_look)
    with transaction(factory) as s2:
        second = r.start_report(s2, s2.get(Study, study.id), s2.get(type(user), user.id))
        assert second.id == first.id and len(looked) == 2


def test_a_refused_signature_leaves_nothing_half_written(app):
    factory = app.extensions["ris_sessions"]
    with transaction(factory) as s:
        user, study = _user(s), _study(s, _patient(s))
    s = factory()
    with pytest.raises(DomainError):
        report = r.start_report(s, s.get(Study, study.id), s.get(type(user), user.id))
        r.save_report(s, report, s.get(type(user), user.id), {"impression": ""}, "sign")
    s.rollback()
    s.close()
    with transaction(factory) as s:
        assert r.report_of(s, s.get(Study, study.id)) is None


def test_basic_text_sr_holds_the_report_and_is_valid_for_dciodvfy(s, tmp_path):
    report, v1 = _signed(s)
    user = report.versions[0].signed_by
    header = header_for(report)
    v1.sr_instance_uid = basic_text_sr(report, v1, header).SOPInstanceUID
    r.start_addendum(s, report, user)
    v2 = r.save_report(s, report, user, {"addendum": "Incidental sinus mucosal thickening."}, "sign")
    ds = basic_text_sr(report, v2, header, predecessor_sop_uid=v1.sr_instance_uid)
    assert ds.SOPClassUID == BASIC_TEXT_SR_STORAGE and ds.VerificationFlag == "VERIFIED"
    assert ds.SeriesInstanceUID == report_series_uid(report.study.study_instance_uid, "sr")
    texts = {
        item.ConceptNameCodeSequence[0].CodeMeaning: item.ContentSequence[0].TextValue for item in ds.ContentSequence
    }
    assert texts["Impressions"] == "Normal CT of the head."
    assert texts["Addendum"] == "Incidental sinus mucosal thickening."
    predecessor = ds.PredecessorDocumentsSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
    assert predecessor.ReferencedSOPInstanceUID == v1.sr_instance_uid
    path = tmp_path / "sr.dcm"
    path.write_bytes(dicom_bytes(ds))
    proc = subprocess.run(["dciodvfy", str(path)], check=False, capture_output=True, text=True)
    assert "Error" not in proc.stderr and "BasicTextSR" in proc.stderr, proc.stderr


def test_two_readers_signing_at_once_cannot_both_win(app):
    """Two radiologists have the same draft open (version n on both pages). The first signs;
    the second's Sign, sent with the version its page was built from, is refused naming the
    first, and the signature stands."""
    from ris_app.db import begin_write, set_actor
    from ris_app.errors import StaleVersion

    factory = app.extensions["ris_sessions"]
    with transaction(factory) as s:
        a, b = _user(s, "rada"), _user(s, "radb")
        report = r.start_report(s, _study(s, _patient(s)), a)
        ids = report.id, a.id, b.id
        read = r.current_version(report).lock_version  # what both pages carry
    with transaction(factory, write=True) as first:
        set_actor(first, "page:rada")
        rep = first.get(r.Report, ids[0])
        r.save_report(first, rep, first.get(type(a), ids[1]), {"impression": "Mine."}, "sign", expected_version=read)
    second = begin_write(set_actor(factory(), "page:radb"))
    try:
        with pytest.raises(StaleVersion, match="changed by page:rada"):
            rep = second.get(r.Report, ids[0])
            r.save_report(
                second, rep, second.get(type(a), ids[2]), {"impression": "Theirs."}, "sign", expected_version=read
            )
    finally:
        second.rollback()
        second.close()
    with transaction(factory) as s:
        v = r.current_version(s.get(r.Report, ids[0]))
        assert (v.impression, v.signed_by_id, v.changed_by) == ("Mine.", ids[1], "page:rada")


def test_a_reader_that_read_before_another_signed_cannot_overwrite(app):
    """Without a version from a page, a transaction that read the draft before a colleague
    signed still cannot overwrite the signature: the database refuses its write with an
    error a retry mends (SQLite: busy snapshot; PostgreSQL: the stale version)."""
    from ris_app.db import is_retryable

    factory = app.extensions["ris_sessions"]
    with transaction(factory) as s:
        a = _user(s, "rada")
        report = r.start_report(s, _study(s, _patient(s)), a)
        ids = report.id, a.id
    first, second = factory(), factory()
    try:
        rep1, rep2 = first.get(r.Report, ids[0]), second.get(r.Report, ids[0])
        r.current_version(rep2)  # the second reader has the draft open too
        r.save_report(first, rep1, first.get(type(a), ids[1]), {"impression": "Mine."}, "sign")
        first.commit()
        with pytest.raises(Exception) as caught:
            r.save_report(second, rep2, second.get(type(a), ids[1]), {"impression": "Theirs."}, "draft")
            second.commit()
        assert is_retryable(caught.value) or "signed version cannot be changed" in str(caught.value)
        second.rollback()
    finally:
        first.close()
        second.close()
    with transaction(factory) as s:
        assert r.current_version(s.get(r.Report, ids[0])).impression == "Mine."
