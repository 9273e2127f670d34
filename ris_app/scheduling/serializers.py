"""JSON shapes of the API resources (one function per resource).

Times are ISO 8601 with their offset: what the RIS recorded (created_at, changed_at, ...)
in UTC (+00:00), a scheduled start in the site's wall-clock time with the site's offset,
the time integrators entered and scanners show."""

from __future__ import annotations

from ris_app.clock import to_site
from ris_app.frontdesk.clashes import outcome_of
from ris_app.model import Order, Patient, ScheduledProcedureStep, Study
from ris_app.registration.record import record_json
from ris_app.registration.safety import safety_json


def _iso(dt) -> str | None:
    return dt.isoformat() if dt else None


def site_iso(dt) -> str | None:
    """A stored time as the site's wall-clock time with its offset (2026-11-30T14:30:00+01:00)."""
    return to_site(dt).isoformat() if dt else None


def patient_json(p: Patient) -> dict:
    return {
        "mrn": p.mrn,
        "issuer": p.issuer,
        "family_name": p.family_name,
        "given_name": p.given_name,
        "middle_name": p.middle_name,
        "name_prefix": p.name_prefix,
        "name_suffix": p.name_suffix,
        "birth_date": p.birth_date.isoformat() if p.birth_date else None,
        "sex": p.sex,
        "phone": p.phone,
        "email": p.email,
        "address": p.address,
        "insurance": p.insurance,
        "language": p.language,
        "notify_email": p.notify_email,
        "notify_sms": p.notify_sms,
        # The survivor's MRN when this record was merged into another (kept for the record).
        "merged_into": p.merged_into.mrn if p.merged_into is not None else None,
        **record_json(p),  # the clinical record, insurance as data, other identifiers
    }


def step_json(s: ScheduledProcedureStep) -> dict:
    return {
        "sps_id": s.sps_id,
        "modality": s.modality,
        "station_aet": s.station_aet.split("\\") if s.station_aet else [],
        "station_name": s.station_name,
        "location": s.location,
        "description": s.description,
        "scheduled_start": site_iso(s.start_datetime),
        "scheduled_end": site_iso(s.end_datetime),
        # "" booked normally, "clash" accepted over taken time (HL7, import), "overbook" on purpose
        "booking_flag": s.booking_flag,
        "booking_clash_with": s.booking_clash_with,
        "status": s.status,
        "status_changed_at": _iso(s.status_changed_at),
        "version": s.lock_version,
        "changed_by": s.changed_by,
        "history": [
            {
                "from": h.from_status,
                "to": h.to_status,
                "at": _iso(h.changed_at),
                "source": h.source,
                "actor": h.actor,  # who: a user, api:<token>, plugin, hl7:<app>, mpps:<AE>, no-show sweep
                "reason": h.reason,
            }
            for h in s.history
        ],
    }


def study_json(st: Study) -> dict:
    return {
        "study_instance_uid": st.study_instance_uid,
        "orthanc_id": st.orthanc_id,
        "accession_number": st.accession_number,
        "patient_mrn": st.patient_mrn,
        "patient_name": st.patient_name,
        "patient_birth_date": st.patient_birth_date,
        "station_aet": st.station_aet,
        "study_date": st.study_date,
        "study_description": st.study_description,
        "modalities": st.modalities.split("\\") if st.modalities else [],
        "series": st.series_count,
        "instances": st.instance_count,
        "first_received_at": _iso(st.first_received_at),
        "last_received_at": _iso(st.last_received_at),
        "stable_at": _iso(st.stable_at),
        "deleted_at": _iso(st.deleted_at),
        "order": st.order.accession_number if st.order else None,
        "link_method": st.link_method or None,
        "unmatched": st.order_id is None,
    }


def order_json(o: Order, study: Study | None = None) -> dict:
    rp = o.requested_procedures[0]
    step = rp.steps[0]
    return {
        "accession_number": o.accession_number,
        "placer_order_number": o.placer_order_number,
        "filler_order_number": o.filler_order_number,
        "priority": o.priority,
        "referring_physician": o.referring_physician,
        "reason_for_exam": o.reason_for_exam,
        "notes": o.notes,  # the desk's notes (the order page's edit, PATCH)
        "diagnosis_codes": o.diagnosis_codes,
        "patient": {"mrn": o.patient.mrn, "issuer": o.patient.issuer},
        "procedure_code": rp.procedure_code.code if rp.procedure_code else None,
        "description": rp.description,
        "requested_procedure_id": rp.requested_procedure_id,
        "study_instance_uid": rp.study_instance_uid,
        "status": step.status,
        "version": step.lock_version,  # send it back ("version" or If-Match) to move the step
        # out_of_hours: booked outside the station's opening hours (accepted; the desk sees it)
        "scheduled_procedure_step": step_json(step) | {"out_of_hours": outcome_of(step).out_of_hours},
        "study": study_json(study) if study else None,
        "safety": safety_json(step),  # the safety check: findings, hold, override
        "preauth": {"number": o.preauth.number, "status": o.preauth.status} if o.preauth else None,
        "created_at": _iso(o.created_at),
    }
