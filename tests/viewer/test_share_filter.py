"""The share session's DICOMweb filter (routes.share_query) on its own: what a path and a
query may name when a session may read one study only; and, for a link without the
report, the hiding of the report's DICOM copies (routes.hide_report) on Orthanc's answers
recorded in tests/fixtures/share-hiding/ (a 4-instance CT study with its signed report's
Encapsulated PDF and Basic Text SR, stored by the signing tasks; Orthanc 1.10.1 with its
DICOMweb plugin, as the service account read them in tests/e2e/test_e2e_share.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ris_app.reporting.documents import report_series_uid
from ris_app.viewer.routes import ReportHiding, ShareRefused, hide_report, share_answer_filtered, share_query

RECORDED = Path(__file__).parent.parent / "fixtures" / "share-hiding"

UID = "1.2.826.0.1.3680043.2.1125.1"
OTHER = "1.2.826.0.1.3680043.2.1125.9"
SERIES, SOP = "1.2.3.4", "1.2.3.5"


@pytest.mark.parametrize(
    "path, query, forwarded",
    [
        (f"studies/{UID}/metadata", [], []),
        (f"studies/{UID}/series", [("includefield", "00080060")], [("includefield", "00080060")]),
        (f"studies/{UID}/series/{SERIES}/instances/{SOP}/frames/1", [], []),
        (f"studies/{UID}/series", [("StudyInstanceUID", UID)], []),  # the same study: dropped, not needed
        ("studies", [], [("StudyInstanceUID", UID)]),
        (
            "studies",
            [("PatientID", "X"), ("limit", "101")],
            [("PatientID", "X"), ("limit", "101"), ("StudyInstanceUID", UID)],
        ),
        ("studies", [("0020000d", UID)], [("StudyInstanceUID", UID)]),
    ],
)
def test_reads_of_the_study_go_through(path, query, forwarded):
    assert share_query(path, "GET", query, UID) == forwarded


@pytest.mark.parametrize(
    "path, query",
    [
        (f"studies/{OTHER}/metadata", []),
        (f"studies/{UID}9/metadata", []),  # a UID that only starts like the shared one
        (f"studies/{OTHER}/series/{SERIES}/instances/{SOP}/frames/1", []),
        ("series", []),
        ("instances", [("SOPInstanceUID", SOP)]),
        ("studies", [("StudyInstanceUID", OTHER)]),
        ("studies", [("studyinstanceuid", OTHER)]),
        ("studies", [("0020000D", OTHER)]),
        ("studies", [("0020,000D", OTHER)]),
        ("studies", [("(0020,000D)", OTHER)]),
        ("studies", [("StudyInstanceUID", f"{UID},{OTHER}")]),
        ("studies", [("StudyInstanceUID", f"{UID}\\{OTHER}")]),
        (f"studies/{UID}/series", [("StudyInstanceUID", OTHER)]),
        ("tools/execute-script", []),
        (f"studies/{UID}/../{OTHER}", []),
    ],
)
def test_anything_beyond_the_study_is_refused(path, query):
    with pytest.raises(ShareRefused):
        share_query(path, "GET", query, UID)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_a_share_session_only_reads(method):
    with pytest.raises(ShareRefused):
        share_query(f"studies/{UID}", method, [], UID)


# ------------------------------------------------------------------ a link without the report
def _recorded(name: str) -> list[dict]:
    return json.loads((RECORDED / f"{name}.json").read_text())


def _value(item: dict, tag: str) -> str:
    return item[tag]["Value"][0]


STUDY = _value(_recorded("studies")[0], "0020000D")
REPORT_SOPS = {_value(i, "00080018") for i in _recorded("instances") if _value(i, "00080060") != "CT"}
NOTHING = ReportHiding(frozenset(), frozenset())  # the modality rule alone
BY_UID = ReportHiding(
    frozenset({report_series_uid(STUDY, "pdf"), report_series_uid(STUDY, "sr")}), frozenset(REPORT_SOPS)
)


def _hidden(name: str, hiding: ReportHiding) -> list[dict]:
    return json.loads(hide_report((RECORDED / f"{name}.json").read_bytes(), hiding))


@pytest.mark.parametrize("hiding", [NOTHING, BY_UID], ids=["by-modality", "by-modality-and-uid"])
@pytest.mark.parametrize("name, images", [("series", 1), ("instances", 4), ("metadata", 4)])
def test_the_report_copies_leave_the_answers(name, images, hiding):
    recorded = _recorded(name)
    assert {_value(i, "00080060") for i in recorded} == {"CT", "DOC", "SR"}
    kept = _hidden(name, hiding)
    assert [_value(i, "00080060") for i in kept] == ["CT"] * images
    assert kept == [i for i in recorded if _value(i, "00080060") == "CT"]  # the images' objects untouched


def test_the_report_series_uids_are_the_ones_the_signing_tasks_store():
    by_modality = {_value(i, "00080060"): _value(i, "0020000E") for i in _recorded("series")}
    assert BY_UID.series == {by_modality["DOC"], by_modality["SR"]}


def test_a_report_copy_without_its_modality_goes_by_its_uids():
    """A copy whose Modality was lost or changed (a PACS that rewrites it) is still known
    by its series and instance UIDs."""
    recorded = _recorded("instances")
    for item in recorded:
        item["00080060"]["Value"] = ["OT"]
    kept = json.loads(hide_report(json.dumps(recorded).encode(), BY_UID))
    assert len(kept) == 4 and not {_value(i, "00080018") for i in kept} & REPORT_SOPS
    assert len(json.loads(hide_report(json.dumps(recorded).encode(), NOTHING))) == 6


def test_the_study_search_no_longer_names_the_report_modalities():
    (study,) = _hidden("studies", BY_UID)
    assert study["00080061"]["Value"] == ["CT"]
    only_report = [{"00080061": {"vr": "CS", "Value": ["DOC", "SR"]}}]
    assert json.loads(hide_report(json.dumps(only_report).encode(), NOTHING)) == [{"00080061": {"vr": "CS"}}]


@pytest.mark.parametrize("body", [b"", b"{}", b'{"Message": "x"}', b"[1]", b"<NativeDicomModel/>", b"\xff"])
def test_an_answer_that_is_not_a_dicom_json_list_is_not_passed_on(body):
    with pytest.raises(ValueError):
        hide_report(body, NOTHING)


PDF_SERIES, SR_SERIES = sorted(BY_UID.series)
PDF_SOP = sorted(REPORT_SOPS)[0]


@pytest.mark.parametrize(
    "path",
    [
        f"studies/{STUDY}/series/{PDF_SERIES}",
        f"studies/{STUDY}/series/{PDF_SERIES}/metadata",
        f"studies/{STUDY}/series/{SR_SERIES}/instances",
        f"studies/{STUDY}/series/{SERIES}/instances/{PDF_SOP}/metadata",  # its instance under another series
        f"studies/{STUDY}/series/{PDF_SERIES}/instances/{PDF_SOP}/bulk/00420011",
        f"studies/{STUDY}/series/{PDF_SERIES}/instances/{PDF_SOP}/frames/1",
        f"studies/{STUDY}",  # the whole study's DICOM files, report included
        f"studies/{STUDY}/rendered",
        f"studies/{STUDY}/thumbnail",
    ],
)
def test_paths_naming_the_report_are_refused(path):
    assert share_query(path, "GET", [], STUDY) == []  # a link with the report reads them
    with pytest.raises(ShareRefused):
        share_query(path, "GET", [], STUDY, BY_UID)


@pytest.mark.parametrize(
    "path, filtered",
    [
        ("studies", True),
        (f"studies/{STUDY}/series", True),
        (f"studies/{STUDY}/instances", True),
        (f"studies/{STUDY}/metadata", True),
        (f"studies/{STUDY}/series/{SERIES}/metadata", True),
        (f"studies/{STUDY}/series/{SERIES}/instances", True),
        (f"studies/{STUDY}/series/{SERIES}/instances/{SOP}/metadata", True),
        (f"studies/{STUDY}/series/{SERIES}/instances/{SOP}/frames/1", False),
        (f"studies/{STUDY}/series/{SERIES}/instances/{SOP}/bulk/7FE00010", False),
        (f"studies/{STUDY}/series/{SERIES}", False),
    ],
)
def test_the_image_reads_go_through_and_only_json_answers_are_filtered(path, filtered):
    assert share_query(path, "GET", [], STUDY, BY_UID) == ([("StudyInstanceUID", STUDY)] if path == "studies" else [])
    assert share_answer_filtered(path) is filtered
