"""The REST API (JSON, bearer token). See docs/api.md."""
from __future__ import annotations

import logging
import struct
import time
from datetime import date, datetime, timedelta

import requests
from flask import Blueprint, Response, jsonify, request
from sqlalchemy import select, text as sql_text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import contains_eager

from . import validation as v
from .auth import api_auth
from .orthanc_client import orthanc_request
from .errors import ApiError
from .models import (
    PRIORITIES, SEXES, Order, Patient, ProcedureCode, RequestedProcedure,
    ScheduledProcedureStep as SPS, Station, Study,
)
from .orders import (
    OrderData, PatientData, apply_action, create_order, create_patient, find_order,
    find_patient, primary_step, update_patient,
)
from .serializers import order_json, patient_json, step_json, study_json
from .states import TRANSITIONS, SPSStatus
from .study_sync import StudyEvent, apply_study_event
from .web import db, settings
from . import worklist
from .worklist_explain import log_query

log = logging.getLogger(__name__)
bp = Blueprint("api", __name__, url_prefix="/api")


def _commit():
    try:
        db().commit()
    except IntegrityError as exc:
        db().rollback()
        log.warning("write refused by a database constraint: %s", exc.orig.__class__.__name__)
        raise ApiError(409, "conflicts with an existing record") from None


# ------------------------------------------------------------------ health
@bp.get("/health")
def health():
    """Liveness and readiness of the RIS and its view of Orthanc (no token needed)."""
    status = {"status": "ok", "database": "ok", "orthanc": "unknown"}
    code = 200
    try:
        db().execute(sql_text("SELECT 1"))
    except Exception as exc:  # report, do not crash the probe
        status.update(status="error", database=f"error: {exc.__class__.__name__}")
        code = 503
    try:
        r = orthanc_request(settings(), "GET", "/system", timeout=1)
        status["orthanc"] = "ok" if r.ok else f"http {r.status_code}"
    except requests.RequestException:
        status["orthanc"] = "unreachable"
    last = db().scalar(select(Study.last_received_at).order_by(Study.last_received_at.desc()).limit(1)) if code == 200 else None
    status["last_study_event"] = last.isoformat() if last else None
    return jsonify(status), code


# ------------------------------------------------------------------ patients
PATIENT_TEXT_FIELDS = {  # field -> max length (DICOM PN components are 64 chars)
    "family_name": 64, "given_name": 64, "middle_name": 64, "name_prefix": 64, "name_suffix": 64,
    "issuer": 64, "phone": 64, "email": 255, "address": 512, "insurance": 255,
}


def _patient_fields(body: dict, *, partial: bool) -> dict:
    out: dict = {}
    for name, max_len in PATIENT_TEXT_FIELDS.items():
        if partial and name not in body:
            continue
        forbid = "\\^=" if name.endswith("_name") or name.startswith("name_") else "\\"
        out[name] = v.text(body, name, required=(name == "family_name" and not partial), max_len=max_len, forbid=forbid)
    if not partial or "birth_date" in body:
        out["birth_date"] = v.iso_date(body, "birth_date")
    if not partial or "sex" in body:
        out["sex"] = v.choice(body, "sex", SEXES, default="U")
    return out


@bp.post("/patients")
@api_auth
def post_patient():
    body = v.json_body(request)
    mrn = v.text(body, "mrn", required=True, max_len=64)
    fields = _patient_fields(body, partial=False)
    patient = create_patient(db(), PatientData(mrn=mrn, **fields))
    _commit()
    return jsonify(patient_json(patient)), 201


def _get_patient(mrn: str) -> Patient:
    patient = find_patient(db(), mrn, request.args.get("issuer"))
    if patient is None:
        raise ApiError(404, "no patient with this MRN", field="mrn")
    return patient


@bp.get("/patients/<mrn>")
@api_auth
def get_patient(mrn: str):
    return jsonify(patient_json(_get_patient(mrn)))


@bp.patch("/patients/<mrn>")
@api_auth
def patch_patient(mrn: str):
    body = v.json_body(request)
    patient = _get_patient(mrn)
    update_patient(db(), patient, _patient_fields(body, partial=True))
    _commit()
    return jsonify(patient_json(patient))


# ------------------------------------------------------------------ orders
@bp.post("/orders")
@api_auth
def post_order():
    body = v.json_body(request)
    s = db()
    mrn = v.text(body, "mrn", required=True)
    patient = find_patient(s, mrn, body.get("issuer") if isinstance(body.get("issuer"), str) else None)
    if patient is None:
        raise ApiError(400, "no patient with this MRN; register the patient first", field="mrn")
    code = v.text(body, "procedure_code", required=True, max_len=16)
    procedure = s.scalar(select(ProcedureCode).where(ProcedureCode.code == code))
    if procedure is None:
        raise ApiError(400, "not in the procedure catalog", field="procedure_code")
    modality = v.text(body, "modality", max_len=16, default=procedure.modality).upper()
    if not modality.isalnum():
        raise ApiError(400, "must be a DICOM modality code such as CT or MR", field="modality")
    start = v.iso_datetime(body, "scheduled_start", required=True)
    accession = v.text(body, "accession_number", max_len=16)
    suid = v.text(body, "study_instance_uid", max_len=64)
    if suid and not all(part.isdigit() for part in suid.split(".")):
        raise ApiError(400, "must be a DICOM UID (digits and dots)", field="study_instance_uid")
    data = OrderData(
        patient=patient, procedure=procedure, modality=modality, scheduled_start=start,
        station_aet=v.aet_list(body, "station_aet"),
        station_name=v.text(body, "station_name", max_len=16),
        location=v.text(body, "location", max_len=16),
        accession_number=accession, study_instance_uid=suid,
        placer_order_number=v.text(body, "placer_order_number"),
        filler_order_number=v.text(body, "filler_order_number"),
        priority=v.choice(body, "priority", PRIORITIES, default="ROUTINE"),
        referring_physician=v.text(body, "referring_physician", max_len=128, forbid="\\="),
        reason_for_exam=v.text(body, "reason_for_exam", max_len=64),
        description=v.text(body, "description", max_len=64),
        performing_physician=v.text(body, "performing_physician", max_len=128, forbid="\\="),
    )
    cfg = settings()
    order = create_order(s, data, accession_prefix=cfg.accession_prefix, uid_root=cfg.uid_root)
    _commit()
    return jsonify(order_json(order)), 201


def _order_study(order: Order) -> Study | None:
    return db().scalar(select(Study).where(Study.order_id == order.id).order_by(Study.id).limit(1))


@bp.get("/orders/<accession>")
@api_auth
def get_order(accession: str):
    order = find_order(db(), accession)
    return jsonify(order_json(order, _order_study(order)))


@bp.post("/orders/<accession>/status")
@api_auth
def post_order_status(accession: str):
    body = v.json_body(request)
    action = v.choice(body, "action", [a.upper() for a in TRANSITIONS]).lower()
    order = find_order(db(), accession)
    apply_action(primary_step(order), action, source="api")
    _commit()
    return jsonify(order_json(order, _order_study(order)))


# ------------------------------------------------------------------ worklist & studies
@bp.get("/worklist")
@api_auth
def get_worklist():
    """Scheduled steps of one day (default today), optionally per station, modality, status."""
    try:
        day = date.fromisoformat(request.args["date"]) if request.args.get("date") else date.today()
    except ValueError:
        raise ApiError(400, "must be a date as YYYY-MM-DD", field="date") from None
    start = datetime.combine(day, datetime.min.time())
    stmt = (select(SPS).join(SPS.requested_procedure).join(RequestedProcedure.order).join(Order.patient)
            .options(contains_eager(SPS.requested_procedure).contains_eager(RequestedProcedure.order)
                     .contains_eager(Order.patient))
            .where(SPS.start_datetime >= start, SPS.start_datetime < start + timedelta(days=1)))
    if request.args.get("modality"):
        stmt = stmt.where(SPS.modality == request.args["modality"].upper())
    if request.args.get("station_aet"):
        stmt = stmt.where(SPS.station_aet.contains(request.args["station_aet"]))
    if request.args.get("status"):
        statuses = [x.strip().upper() for x in request.args["status"].split(",")]
        bad = [x for x in statuses if x not in SPSStatus.__members__]
        if bad:
            raise ApiError(400, f"unknown status {bad[0]}", field="status")
        stmt = stmt.where(SPS.status.in_(statuses))
    items = []
    for step in db().scalars(stmt.order_by(SPS.start_datetime, SPS.id)):
        order = step.requested_procedure.order
        item = step_json(step)
        item.pop("history")
        item.update(accession_number=order.accession_number, priority=order.priority,
                    patient={"mrn": order.patient.mrn, "family_name": order.patient.family_name,
                             "given_name": order.patient.given_name})
        items.append(item)
    return jsonify({"date": day.isoformat(), "items": items})


@bp.get("/studies")
@api_auth
def get_studies():
    stmt = select(Study).where(Study.deleted_at.is_(None))
    if request.args.get("unmatched") in ("1", "true"):
        stmt = stmt.where(Study.order_id.is_(None))
    try:
        limit = min(int(request.args.get("limit", 100)), 1000)
    except ValueError:
        raise ApiError(400, "must be an integer", field="limit") from None
    rows = db().scalars(stmt.order_by(Study.last_received_at.desc()).limit(limit))
    return jsonify({"items": [study_json(s) for s in rows]})


# ------------------------------------------------------------------ catalog
@bp.get("/procedure-codes")
@api_auth
def get_procedure_codes():
    rows = db().scalars(select(ProcedureCode).order_by(ProcedureCode.code))
    return jsonify({"items": [{"code": p.code, "coding_scheme": p.coding_scheme, "description": p.description,
                               "modality": p.modality, "default_duration_minutes": p.default_duration_minutes}
                              for p in rows]})


@bp.post("/procedure-codes")
@api_auth
def post_procedure_code():
    body = v.json_body(request)
    p = ProcedureCode(code=v.text(body, "code", required=True, max_len=16),
                      coding_scheme=v.text(body, "coding_scheme", max_len=16, default="99ORIS"),
                      description=v.text(body, "description", required=True, max_len=64),
                      modality=v.text(body, "modality", required=True, max_len=16).upper())
    db().add(p)
    _commit()
    return jsonify({"code": p.code}), 201


@bp.get("/stations")
@api_auth
def get_stations():
    rows = db().scalars(select(Station).order_by(Station.aet))
    return jsonify({"items": [{"aet": s.aet, "name": s.name, "modality": s.modality, "location": s.location}
                              for s in rows]})


@bp.post("/stations")
@api_auth
def post_station():
    body = v.json_body(request)
    st = Station(aet=v.aet_list(body, "aet") or v.text(body, "aet", required=True),
                 name=v.text(body, "name", max_len=16), modality=v.text(body, "modality", required=True, max_len=16).upper(),
                 location=v.text(body, "location", max_len=16),
                 worklist_own_steps_only=body.get("worklist_own_steps_only") is True)
    if "\\" in st.aet:
        raise ApiError(400, "one AE title per station", field="aet")
    db().add(st)
    _commit()
    return jsonify({"aet": st.aet}), 201


# ------------------------------------------------------------------ plugin endpoints
@bp.post("/internal/study-events")
@api_auth
def post_study_event():
    """Called by the Orthanc plugin for each study change; idempotent."""
    ev = StudyEvent.from_json(request.get_json(silent=True))
    study = apply_study_event(db(), ev)
    _commit()
    return jsonify({"ok": True, "linked": bool(study and study.order_id)})


@bp.post("/internal/worklist/find")
@api_auth
def post_worklist_find():
    """Called by the Orthanc plugin for each C-FIND MWL. Body: the DICOM query; headers
    X-Calling-AET / X-Called-AET. Answer: the matching items, each framed by a 4-byte
    big-endian length. Every query is logged for the explainer (worklist_explain)."""
    cfg = settings()
    started = time.perf_counter()
    calling = request.headers.get("X-Calling-AET", "").strip()
    try:
        result = worklist.find(db(), request.get_data(), default_statuses=cfg.worklist_statuses,
                               limit=cfg.worklist_limit, calling_aet=calling)
    except worklist.WorklistQueryError as exc:
        raise ApiError(400, str(exc), field="body") from None
    log_query(db(), result.query, calling, request.headers.get("X-Called-AET", "").strip(), result,
              (time.perf_counter() - started) * 1000)
    db().commit()  # the log entry, and items rebuilt lazily
    payload = b"".join(struct.pack(">I", len(item)) + item for item in result.items)
    resp = Response(payload, mimetype="application/octet-stream")
    resp.headers["X-Worklist-Incomplete"] = "1" if result.incomplete else "0"
    resp.headers["X-Worklist-Count"] = str(len(result.items))
    return resp
