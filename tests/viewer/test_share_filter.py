"""The share session's DICOMweb filter (routes.share_query) on its own: what a path and a
query may name when a session may read one study only."""

from __future__ import annotations

import pytest

from ris_app.viewer.routes import ShareRefused, share_query

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
