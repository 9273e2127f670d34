"""The RIS's calls to Orthanc's REST API: one place that knows the URL and credentials
(`orthanc_request`); `OrthancClient` reads studies for reconciliation and corrects a
stored study (patient, accession) with Orthanc's modify API, keeping every UID.

Orthanc 1.10 rules that shape `modify_study` (checked against the real server):
- Orthanc IDs are hashes of PatientID and the UIDs, so a change that keeps PatientID
  rewrites instances onto the same IDs: this needs `OverwriteInstances` and must keep the
  source (`KeepSource: false` would delete what was just written); the study's main tags
  are then refreshed with `/reconstruct`.
- PatientID cannot be replaced at study or series level. When the study's patient holds
  only this study, the patient is modified (one job); otherwise each instance is modified
  and stored again, then the old study is deleted.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TypedDict

import requests

from ris_app.config import Config

log = logging.getLogger(__name__)

KEEP_UIDS = ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"]


def orthanc_request(cfg: Config, method: str, path: str, *, timeout: float = 30, **kwargs) -> requests.Response:
    """Call Orthanc's REST API at `path` (leading slash), authenticating when configured."""
    auth = (cfg.orthanc_username, cfg.orthanc_password) if cfg.orthanc_username else None
    return requests.request(method, cfg.orthanc_url + path, auth=auth, timeout=timeout, **kwargs)


class StudyAnswers(TypedDict):
    """Orthanc's REST answers about one study, as read: what `StudyEvent.from_orthanc`
    builds an event from (and the plugin's `study_state`, from the same answers)."""

    study: dict  # GET /studies/{id}
    statistics: dict  # GET /studies/{id}/statistics
    series: list[dict]  # GET /studies/{id}/series
    instance_tags: dict  # GET /instances/{first instance}/tags?short; {} when unreadable
    remote_aet: str  # GET /instances/{first instance}/metadata/RemoteAET; "" when none


class OrthancError(RuntimeError):
    """Orthanc refused or failed; `retry` says whether trying later may help."""

    def __init__(self, message: str, retry: bool = True) -> None:
        super().__init__(message)
        self.retry = retry


@dataclass
class OrthancClient:
    cfg: Config
    timeout: float = 30.0
    job_timeout: float = 600.0

    def _req(self, method: str, path: str, **kw) -> requests.Response:
        try:
            r = orthanc_request(self.cfg, method, path, timeout=self.timeout, **kw)
        except requests.RequestException as exc:
            raise OrthancError(f"Orthanc unreachable: {exc.__class__.__name__}") from None
        if r.status_code == 404:
            raise OrthancError(f"{path}: not found", retry=False)
        if r.status_code >= 400:
            raise OrthancError(f"{method} {path}: HTTP {r.status_code} {r.text[:200]}", retry=r.status_code >= 500)
        return r

    def get(self, path: str):
        return self._req("GET", path).json()

    def post(self, path: str, body) -> requests.Response:
        return self._req("POST", path, json=body)

    # -- reading -------------------------------------------------------------------
    def study_ids(self) -> list[str]:
        return self.get("/studies")

    def changes_last(self) -> int:
        return int(self.get("/changes?limit=0").get("Last", 0))

    def study_counts(self, orthanc_id: str) -> tuple[int, int] | None:
        """(series, instances) Orthanc holds for the study, or None when it is gone: one
        request, enough to tell whether the RIS's copy is current."""
        try:
            stats = self.get(f"/studies/{orthanc_id}/statistics")
        except OrthancError as exc:
            if not exc.retry:
                return None
            raise
        return int(stats.get("CountSeries", 0)), int(stats.get("CountInstances", 0))

    def study_answers(self, orthanc_id: str) -> StudyAnswers | None:
        """What Orthanc says of the study now, for `StudyEvent.from_orthanc`; None when
        the study is gone. Reads what the plugin's change feed reads, the same way."""
        try:
            study = self.get(f"/studies/{orthanc_id}")
            statistics = self.get(f"/studies/{orthanc_id}/statistics")
            series = self.get(f"/studies/{orthanc_id}/series")
        except OrthancError as exc:
            if not exc.retry:
                return None
            raise
        first = (series[0].get("Instances") or [None])[0] if series else None
        tags = self._get_if_found(f"/instances/{first}/tags?short") if first else None
        aet = self._get_if_found(f"/instances/{first}/metadata/RemoteAET") if first else None
        return StudyAnswers(
            study=study,
            statistics=statistics,
            series=series,
            instance_tags=tags.json() if tags is not None else {},
            remote_aet=aet.text if aet is not None else "",
        )

    def _get_if_found(self, path: str) -> requests.Response | None:
        """GET an answer Orthanc may not have (a study uploaded over REST has no
        RemoteAET; an instance may be deleted meanwhile): None for a 404."""
        try:
            return self._req("GET", path)
        except OrthancError as exc:
            if exc.retry:
                raise
            return None

    def store_instance(self, data: bytes) -> str:
        """POST one DICOM instance (bytes of a Part 10 file); returns its Orthanc ID.
        Storing an instance Orthanc already holds (same SOP Instance UID) changes nothing."""
        return self._req("POST", "/instances", data=data, headers={"Content-Type": "application/dicom"}).json()["ID"]

    def find_study(self, study_instance_uid: str) -> str | None:
        hits = self._req("POST", "/tools/lookup", data=study_instance_uid).json()
        ids = [h["ID"] for h in hits if h.get("Type") == "Study"]
        return ids[0] if ids else None

    # -- correcting ----------------------------------------------------------------
    def wait_job(self, job_id: str) -> dict:
        deadline = time.monotonic() + self.job_timeout
        while time.monotonic() < deadline:
            job = self.get(f"/jobs/{job_id}")
            if job.get("State") == "Success":
                return job
            if job.get("State") == "Failure":
                raise OrthancError(f"job {job_id} failed: {job.get('ErrorDetails') or job.get('ErrorDescription')}")
            time.sleep(0.1)
        raise OrthancError(f"job {job_id} did not finish within {self.job_timeout:.0f} s")

    def _modify_job(self, level: str, resource_id: str, replace: dict, keep_source: bool) -> dict:
        body = {
            "Replace": replace,
            "Keep": KEEP_UIDS,
            "Force": True,
            "KeepSource": keep_source,
            "Asynchronous": True,
            "Priority": 1,
        }
        job_id = self.post(f"/{level}/{resource_id}/modify", body).json()["ID"]
        log.info("Orthanc job %s modifies %s %s", job_id, level, resource_id)
        return self.wait_job(job_id)

    def modify_study(self, orthanc_id: str, replace: dict) -> str:
        """Apply `replace` (DICOM keyword -> value) to every instance of the study, UIDs kept.
        Returns the study's Orthanc ID afterwards (it changes when PatientID does)."""
        study = self.get(f"/studies/{orthanc_id}")
        suid = study["MainDicomTags"]["StudyInstanceUID"]
        current_pid = study.get("PatientMainDicomTags", {}).get("PatientID", "")
        if "PatientID" not in replace or replace["PatientID"] == current_pid:
            # Naming PatientID at study level is refused even when it does not change.
            same_patient = {k: v for k, v in replace.items() if k != "PatientID"}
            self._modify_job("studies", orthanc_id, same_patient, keep_source=True)
            self.post(f"/studies/{orthanc_id}/reconstruct", {})
            return orthanc_id
        patient = self.get(f"/patients/{study['ParentPatient']}")
        if len(patient.get("Studies", [])) == 1:
            self._modify_job("patients", study["ParentPatient"], replace, keep_source=False)
        else:
            self._move_instances(orthanc_id, replace)
        new_id = self.find_study(suid)
        if new_id is None:
            raise OrthancError(f"study {suid} not found after modification", retry=False)
        return new_id

    def _move_instances(self, orthanc_id: str, replace: dict) -> None:
        """PatientID changes for one study of a patient with others: modify and store each
        instance, then delete the old study (Orthanc 1.10 has no job for this)."""
        body = {"Replace": replace, "Keep": KEEP_UIDS, "Force": True}
        for inst in self.get(f"/studies/{orthanc_id}/instances"):
            data = self.post(f"/instances/{inst['ID']}/modify", body).content
            self._req("POST", "/instances", data=data, headers={"Content-Type": "application/dicom"})
        self._req("DELETE", f"/studies/{orthanc_id}")
