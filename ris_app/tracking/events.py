"""Studies reported by the Orthanc plugin or found by reconciliation: record them and link
them to their order.

An event is built from Orthanc's REST answers about a study, in two places that must
agree: the plugin's change feed (plugins/risbridge/change_feed.py, `study_state`, posted
as JSON and read by `StudyEvent.from_json`) and the RIS's own reads for reconciliation
(`StudyEvent.from_orthanc`). The plugin runs on the standard library inside Orthanc and
cannot import this package, so the two are twins kept alike line for line, and a
contract test feeds both the same recorded answers.

Events arrive at least once and possibly out of order; each one carries the study's
current state as Orthanc holds it, so handling is an idempotent upsert keyed on
StudyInstanceUID. A study not yet linked is linked by `tracking.linking.find_order_for`
(AccessionNumber, then StudyInstanceUID, then the SPS IDs of the Request Attributes
Sequence: the IHE SWF order of precedence, shared with MPPS).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ris_app.clock import utcnow
from ris_app.errors import Invalid
from ris_app.model import Study
from ris_app.scheduling.orders import set_step_status
from ris_app.scheduling.states import STARTABLE, SPSStatus
from ris_app.tracking.linking import find_order_for

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StudyEvent:
    seq: int
    change: str  # NewStudy, NewSeries, StableStudy, Deleted
    orthanc_id: str
    study_instance_uid: str = ""
    accession_number: str = ""
    patient_id: str = ""
    patient_name: str = ""
    study_date: str = ""
    study_description: str = ""
    modalities: tuple[str, ...] = ()
    series_count: int = 0
    instance_count: int = 0
    sps_ids: tuple[str, ...] = ()
    patient_birth_date: str = ""
    patient_sex: str = ""
    station_aet: str = ""

    @classmethod
    def from_orthanc(
        cls,
        study: dict,
        statistics: dict,
        series: list[dict],
        instance_tags: dict | None = None,
        remote_aet: str = "",
        *,
        seq: int = 0,
        change: str = "Reconcile",
    ) -> StudyEvent:
        """The event for a study as Orthanc's REST API describes it now: `study` is
        GET /studies/{id}, `statistics` GET /studies/{id}/statistics, `series`
        GET /studies/{id}/series, `instance_tags` GET /instances/{id}/tags?short and
        `remote_aet` GET /instances/{id}/metadata/RemoteAET, both of the first series'
        first instance ({} and "" when Orthanc has none). The plugin's `study_state` is
        the twin of this method: change one, change the other."""
        tags = dict(study.get("PatientMainDicomTags", {}))
        tags.update(study.get("MainDicomTags", {}))
        state = {
            "StudyInstanceUID": tags.get("StudyInstanceUID", ""),
            "AccessionNumber": tags.get("AccessionNumber", ""),
            "PatientID": tags.get("PatientID", ""),
            "PatientName": tags.get("PatientName", ""),
            "PatientBirthDate": tags.get("PatientBirthDate", ""),
            "PatientSex": tags.get("PatientSex", ""),
            "StudyDate": tags.get("StudyDate", ""),
            "StudyDescription": tags.get("StudyDescription", ""),
            "Modalities": sorted({s.get("MainDicomTags", {}).get("Modality", "") for s in series} - {""}),
            "CountSeries": int(statistics.get("CountSeries", len(series))),
            "CountInstances": int(statistics.get("CountInstances", 0)),
            "ScheduledProcedureStepIDs": sps_ids_of(instance_tags or {}),
            "RemoteAET": remote_aet.strip(),
        }
        return cls.from_json({"seq": seq, "change": change, "orthanc_id": study.get("ID", ""), "study": state})

    @classmethod
    def from_json(cls, body: Any) -> StudyEvent:
        if not isinstance(body, dict):
            raise Invalid("event must be a JSON object", field="body")
        try:
            seq = int(body.get("seq", 0))
        except (TypeError, ValueError):
            raise Invalid("must be an integer", field="seq") from None
        change = body.get("change")
        if change not in ("NewStudy", "NewSeries", "StableStudy", "Deleted", "Reconcile"):
            raise Invalid("unknown change type", field="change")
        orthanc_id = body.get("orthanc_id")
        if not isinstance(orthanc_id, str) or not orthanc_id:
            raise Invalid("is required", field="orthanc_id")
        study = body.get("study") or {}
        if not isinstance(study, dict):
            raise Invalid("must be an object", field="study")
        if change != "Deleted" and not study.get("StudyInstanceUID"):
            raise Invalid("is required", field="study.StudyInstanceUID")

        def s(key: str) -> str:
            v = study.get(key, "")
            return v if isinstance(v, str) else str(v)

        def n(key: str) -> int:
            try:
                return int(study.get(key, 0))
            except (TypeError, ValueError):
                raise Invalid("must be an integer", field=f"study.{key}") from None

        return cls(
            seq=seq,
            change=change,
            orthanc_id=orthanc_id,
            study_instance_uid=s("StudyInstanceUID"),
            accession_number=s("AccessionNumber"),
            patient_id=s("PatientID"),
            patient_name=s("PatientName"),
            study_date=s("StudyDate"),
            study_description=s("StudyDescription")[:64],
            modalities=tuple(str(m) for m in study.get("Modalities") or ()),
            series_count=n("CountSeries"),
            instance_count=n("CountInstances"),
            sps_ids=tuple(str(x) for x in study.get("ScheduledProcedureStepIDs") or ()),
            patient_birth_date=s("PatientBirthDate")[:8],
            patient_sex=s("PatientSex")[:16],
            station_aet=s("RemoteAET")[:16],
        )


def sps_ids_of(instance_tags: dict) -> list[str]:
    """The SPS IDs (0040,0009) of the Request Attributes Sequence (0040,0275) in an
    instance's tags as Orthanc's /tags?short gives them: the third way to link."""
    return [
        str(item["0040,0009"])
        for item in instance_tags.get("0040,0275") or []
        if isinstance(item, dict) and item.get("0040,0009")
    ]


def apply_study_event(session: Session, ev: StudyEvent) -> Study | None:
    """Record one study event idempotently. Returns the study row (None for an unknown
    deleted study)."""
    if ev.change == "Deleted":
        study = session.scalar(select(Study).where(Study.orthanc_id == ev.orthanc_id))
        if study is not None and study.deleted_at is None:
            study.deleted_at = utcnow()
            log.info("study %s deleted in Orthanc", ev.orthanc_id)
        return study

    study = session.scalar(select(Study).where(Study.study_instance_uid == ev.study_instance_uid))
    now = utcnow()
    if study is None:
        study = Study(study_instance_uid=ev.study_instance_uid, orthanc_id=ev.orthanc_id, first_received_at=now)
        session.add(study)
    elif ev.seq and study.last_change_seq and ev.seq < study.last_change_seq and ev.change != "Reconcile":
        # An older event delivered late: the row already holds newer state.
        return study
    study.orthanc_id = ev.orthanc_id
    study.accession_number = ev.accession_number[:16]
    study.patient_mrn = ev.patient_id[:64]
    study.patient_name = ev.patient_name[:255]
    study.study_date = ev.study_date[:8]
    study.study_description = ev.study_description
    study.modalities = "\\".join(ev.modalities)[:64]
    study.patient_birth_date = ev.patient_birth_date
    study.patient_sex = ev.patient_sex
    if ev.station_aet:
        study.station_aet = ev.station_aet
    if (ev.series_count, ev.instance_count) != (study.series_count, study.instance_count):
        study.last_received_at = now
    study.series_count = ev.series_count
    study.instance_count = ev.instance_count
    study.deleted_at = None
    if ev.seq:
        study.last_change_seq = max(study.last_change_seq or 0, ev.seq)
    if ev.change == "StableStudy" and study.stable_at is None:
        study.stable_at = now

    if study.order_id is None and study.link_method != "unlinked":  # unlinked by hand: stay so
        order, method = find_order_for(session, ev.accession_number, ev.study_instance_uid, ev.sps_ids)
        if order is not None:
            study.order = order
            study.link_method = method
            log.info("study %s linked to order %s by %s", ev.orthanc_id, order.accession_number, method)
        else:
            log.info("study %s matches no order: recorded as unmatched", ev.orthanc_id)
    if study.order is not None and ev.instance_count > 0:
        for rp in study.order.requested_procedures:
            for step in rp.steps:
                set_step_status(step, SPSStatus.STARTED, "images", only_from=STARTABLE)
    session.flush()
    return study
