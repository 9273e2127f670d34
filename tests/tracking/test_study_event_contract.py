"""The contract between the two builders of study events: the plugin's change feed
(standard library, inside Orthanc) and the RIS's `StudyEvent.from_orthanc` (reconciliation,
the sync worker) must make the same event from the same Orthanc answers. Both read the
same recorded Orthanc 1.10 answers here, each through its own code: the plugin through
Orthanc's internal REST calls, the RIS over HTTP with its OrthancClient."""

from __future__ import annotations

import pytest

from ris_app.config import Config
from ris_app.orthanc.client import OrthancClient
from ris_app.tracking.events import StudyEvent
from risbridge.change_feed import ChangeFeed, OrthancApi
from tests.fixtures.orthanc_answers import RecordedOrthanc, serve


class RecordingRis:
    """The RIS as the plugin's feed sees it: what would have been posted is kept."""

    def __init__(self) -> None:
        self.events: list[dict] = []

    def post_json(self, path: str, payload: dict) -> dict:
        assert path == "/api/internal/study-events"
        self.events.append(payload)
        return {"ok": True}


def _client(tmp_path, url: str) -> OrthancClient:
    return OrthancClient(
        Config.from_env(
            {
                "ORTHANC_RIS_HOME": str(tmp_path),
                "ORTHANC_RIS_API_TOKEN": "t",
                "ORTHANC_RIS_SECRET_KEY": "s",
                "ORTHANC_RIS_ORTHANC_URL": url,
            }
        )
    )


STUDIES = {
    # Stored over DICOM by CT1: accession and SPS IDs both (the SPS IDs used to be left
    # out by the plugin whenever there was an accession, and always by the RIS).
    "scheduled": {
        "study_uid": "1.2.826.0.1.3680043.8.498.1",
        "accession": "RIS00000001",
        "series": (("CT", 2), ("SR", 1)),
        "sps_ids": ("SPS00000002", "SPS00000003"),
    },
    # Uploaded over REST with no accession: no sending AE, no Request Attributes Sequence.
    "uploaded": {"study_uid": "1.2.826.0.1.3680043.8.498.2", "remote_aet": None, "series": (("MR", 1),)},
    # Names beyond Latin-1, a description longer than the RIS keeps, three modalities.
    "non_latin": {
        "study_uid": "1.2.826.0.1.3680043.8.498.3",
        "accession": "A-王",
        "patient_name": "王^小明",
        "description": "CT ABDOMEN PELVIS WITH CONTRAST, ARTERIAL AND PORTAL VENOUS PHASES, LOW DOSE",
        "series": (("CT", 1), ("PR", 1), ("SR", 1)),
        "sps_ids": ("SPS-1",),
        "remote_aet": "MR7 ",
    },
}


@pytest.mark.parametrize("name", list(STUDIES))
def test_the_plugin_and_the_ris_build_the_same_event_from_the_same_answers(tmp_path, name):
    orthanc = RecordedOrthanc()
    orthanc.add_study("o1", **STUDIES[name])
    ris = RecordingRis()
    feed = ChangeFeed(OrthancApi(orthanc.rest_get, lambda key, default: default, lambda key, value: None), ris)
    assert feed.drain() == 1
    (posted,) = ris.events

    with serve(orthanc) as url:
        answers = _client(tmp_path, url).study_answers("o1")
    ours = StudyEvent.from_orthanc(**answers, seq=posted["seq"], change=posted["change"])

    assert StudyEvent.from_json(posted) == ours
    # ... and neither lost what the answers hold (equal and both empty would pass above).
    study = STUDIES[name]
    assert ours.orthanc_id == "o1" and ours.study_instance_uid == study["study_uid"]
    assert ours.sps_ids == study.get("sps_ids", ())
    assert ours.station_aet == (study.get("remote_aet", "CT1") or "").strip()
    assert ours.modalities == tuple(sorted({m for m, _ in study["series"]}))
    assert (ours.series_count, ours.instance_count) == (len(study["series"]), sum(n for _, n in study["series"]))


def test_a_study_gone_from_orthanc_has_no_answers(tmp_path):
    orthanc = RecordedOrthanc()
    with serve(orthanc) as url:
        assert _client(tmp_path, url).study_answers("gone") is None
