"""REST API of scheduling: patients, orders and their status, the procedure catalog and
the stations. See docs/api.md."""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify, request
from sqlalchemy import select

from ris_app.frontdesk.api import clash_policy
from ris_app.frontdesk.resources import add_procedure, add_station
from ris_app.model import (
    PRIORITIES,
    SEXES,
    Order,
    Patient,
    ProcedureCode,
    Station,
    Study,
)
from ris_app.orthanc.modalities import publish_station
from ris_app.registration.duplicates import possible_duplicates
from ris_app.registration.record import apply_json, set_preauth
from ris_app.scheduling.orders import (
    OrderData,
    PatientData,
    apply_action,
    create_order,
    create_patient,
    find_order,
    find_patient,
    patient_changed,
    primary_step,
)
from ris_app.scheduling.serializers import order_json, patient_json
from ris_app.scheduling.states import TRANSITIONS
from ris_app.tracking.corrections import update_patient_everywhere
from ris_app.web import commit, db, settings
from ris_app.web import validation as v
from ris_app.web.access import ADMIN, INTEGRATOR, api_roles
from ris_app.web.errors import ApiError

log = logging.getLogger(__name__)
bp = Blueprint("api", __name__, url_prefix="/api")


# ------------------------------------------------------------------ patients
PATIENT_TEXT_FIELDS = {  # field -> max length (DICOM PN components are 64 chars)
    "family_name": 64,
    "given_name": 64,
    "middle_name": 64,
    "name_prefix": 64,
    "name_suffix": 64,
    "issuer": 64,
    "phone": 64,
    "email": 255,
    "address": 512,
    "insurance": 255,
    "language": 8,
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
    for name in ("notify_email", "notify_sms"):  # the patient's opt-out per channel
        if not partial or name in body:
            out[name] = v.flag(body, name, default=True)
    return out


@bp.post("/patients")
@api_roles(*INTEGRATOR)
def post_patient():
    """Register a patient.

    ---
    post:
      tags: [patients]
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: '#/components/schemas/PatientInput'}
      responses:
        201: {description: Registered, content: {application/json: {schema: {$ref: '#/components/schemas/Patient'}}}}
    """
    body = v.json_body(request)
    mrn = v.text(body, "mrn", required=True, max_len=64)
    fields = _patient_fields(body, partial=False)
    patient = create_patient(db(), PatientData(mrn=mrn, **fields))
    apply_json(patient, body, source="api")
    duplicates = possible_duplicates(db(), patient)  # a warning: the patient is registered
    commit()
    return jsonify({**patient_json(patient), "possible_duplicates": duplicates}), 201


def _get_patient(mrn: str) -> Patient:
    patient = find_patient(db(), mrn, request.args.get("issuer"))
    if patient is None:
        raise ApiError(404, "no patient with this MRN", field="mrn")
    return patient


@bp.get("/patients/<mrn>")
@api_roles(*INTEGRATOR)
def get_patient(mrn: str):
    """A patient by MRN.

    ---
    get:
      tags: [patients]
      parameters:
        - {name: issuer, in: query, required: false, schema: {type: string}}
      responses:
        200: {description: The patient, content: {application/json: {schema: {$ref: '#/components/schemas/Patient'}}}}
    """
    return jsonify(patient_json(_get_patient(mrn)))


@bp.patch("/patients/<mrn>")
@api_roles(*INTEGRATOR)
def patch_patient(mrn: str):
    """Change a patient's demographics (worklist items and stored studies follow).

    ---
    patch:
      tags: [patients]
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: '#/components/schemas/PatientInput'}
      responses:
        200: {description: The patient, content: {application/json: {schema: {$ref: '#/components/schemas/Patient'}}}}
    """
    body = v.json_body(request)
    patient = _get_patient(mrn)
    update_patient_everywhere(db(), patient, _patient_fields(body, partial=True))
    apply_json(patient, body, source="api")
    patient_changed(patient)  # the worklist items show the record
    commit()
    return jsonify(patient_json(patient))


# ------------------------------------------------------------------ orders
@bp.post("/orders")
@api_roles(*INTEGRATOR)
def post_order():
    """Place an order (one requested procedure, one scheduled step).

    ---
    post:
      tags: [orders]
      requestBody:
        required: true
        content:
          application/json:
            schema: {type: object, required: [mrn, procedure_code, scheduled_start], properties: {mrn: {type: string}, procedure_code: {type: string}, modality: {type: string}, scheduled_start: {type: string, format: date-time}, station_aet: {oneOf: [{type: string}, {type: array, items: {type: string}}]}, accession_number: {type: string}, study_instance_uid: {type: string}, priority: {type: string}, reason_for_exam: {type: string}, diagnosis_codes: {type: string, description: 'ICD codes, ~-separated'}, referring_physician: {type: string}}}
      responses:
        201: {description: Placed, content: {application/json: {schema: {$ref: '#/components/schemas/Order'}}}}
    """
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
    start = v.iso_datetime(body, "scheduled_start", required=True)
    accession = v.text(body, "accession_number", max_len=16)
    suid = v.text(body, "study_instance_uid", max_len=64)  # create_order checks the rest (fields.check_order)
    data = OrderData(
        patient=patient,
        procedure=procedure,
        modality=modality,
        scheduled_start=start,
        station_aet=v.aet_list(body, "station_aet"),
        station_name=v.text(body, "station_name", max_len=16),
        location=v.text(body, "location", max_len=16),
        accession_number=accession,
        study_instance_uid=suid,
        placer_order_number=v.text(body, "placer_order_number"),
        filler_order_number=v.text(body, "filler_order_number"),
        priority=v.choice(body, "priority", PRIORITIES, default="ROUTINE"),
        referring_physician=v.text(body, "referring_physician", max_len=128, forbid="\\="),
        reason_for_exam=v.text(body, "reason_for_exam", max_len=64),
        diagnosis_codes=v.text(body, "diagnosis_codes", max_len=255),  # ICD codes, ~-separated
        description=v.text(body, "description", max_len=64),
        performing_physician=v.text(body, "performing_physician", max_len=128, forbid="\\="),
    )
    cfg = settings()
    order = create_order(
        s, data, accession_prefix=cfg.accession_prefix, uid_root=cfg.uid_root, clash_policy=clash_policy(body)
    )
    if "preauth_number" in body or "preauth_status" in body:
        set_preauth(order, body.get("preauth_number", ""), body.get("preauth_status", ""))
    commit()
    return jsonify(order_json(order)), 201


def _order_study(order: Order) -> Study | None:
    return db().scalar(select(Study).where(Study.order_id == order.id).order_by(Study.id).limit(1))


@bp.get("/orders/<accession>")
@api_roles(*INTEGRATOR)
def get_order(accession: str):
    """An order by accession number, with its step and study.

    ---
    get:
      tags: [orders]
      responses:
        200: {description: The order, content: {application/json: {schema: {$ref: '#/components/schemas/Order'}}}}
    """
    order = find_order(db(), accession)
    return jsonify(order_json(order, _order_study(order)))


@bp.post("/orders/<accession>/status")
@api_roles(*INTEGRATOR)
def post_order_status(accession: str):
    """Move the order's step (arrive, start, complete, cancel, discontinue...).

    ---
    post:
      tags: [orders]
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [action]
              properties:
                action: {type: string}
                version: {type: integer, description: "the order's version as read; a newer one answers 409"}
                reason: {type: string, maxLength: 255, description: "why (a cancel's): kept in the history, sent in ORC-16"}
      responses:
        200: {description: The order, content: {application/json: {schema: {$ref: '#/components/schemas/Order'}}}}
        409: {description: The move is not allowed now, or the step changed since the version sent}
    """
    body = v.json_body(request)
    action = v.choice(body, "action", [a.upper() for a in TRANSITIONS]).lower()
    expected = v.expected_version(body, request)
    order = find_order(db(), accession)
    reason = v.text(body, "reason", max_len=255, forbid="")
    apply_action(primary_step(order), action, source="api", expected_version=expected, reason=reason)
    commit()
    return jsonify(order_json(order, _order_study(order)))


# ------------------------------------------------------------------ catalog
@bp.get("/procedure-codes")
@api_roles(*INTEGRATOR)
def get_procedure_codes():
    """The procedure catalog.

    ---
    get:
      tags: [catalog]
      responses:
        200: {description: The codes, content: {application/json: {schema: {$ref: '#/components/schemas/Items'}}}}
    """
    rows = db().scalars(select(ProcedureCode).order_by(ProcedureCode.code))
    return jsonify(
        {
            "items": [
                {
                    "code": p.code,
                    "coding_scheme": p.coding_scheme,
                    "description": p.description,
                    "modality": p.modality,
                    "default_duration_minutes": p.default_duration_minutes,
                    "preparation": p.preparation,
                }
                for p in rows
            ]
        }
    )


@bp.post("/procedure-codes")
@api_roles(*ADMIN)
def post_procedure_code():
    """Add a procedure code.

    ---
    post:
      tags: [catalog]
      requestBody:
        required: true
        content:
          application/json:
            schema: {type: object, required: [code, description, modality], properties: {code: {type: string}, coding_scheme: {type: string}, description: {type: string}, modality: {type: string}}}
      responses:
        201: {description: Added, content: {application/json: {schema: {type: object}}}}
    """
    body = v.json_body(request)
    p = add_procedure(
        db(),
        v.text(body, "code", required=True, max_len=16),
        v.text(body, "description", required=True, max_len=64),
        v.text(body, "modality", required=True, max_len=16),
        coding_scheme=v.text(body, "coding_scheme", max_len=16, default="99ORIS"),
    )
    commit()
    return jsonify({"code": p.code}), 201


@bp.get("/stations")
@api_roles(*INTEGRATOR)
def get_stations():
    """The stations (scanners) and their AE titles.

    ---
    get:
      tags: [stations]
      responses:
        200: {description: The stations, content: {application/json: {schema: {$ref: '#/components/schemas/Items'}}}}
    """
    rows = db().scalars(select(Station).order_by(Station.aet))
    return jsonify(
        {
            "items": [
                {
                    "aet": s.aet,
                    "name": s.name,
                    "modality": s.modality,
                    "location": s.location,
                    "host": s.host,
                    "port": s.port,
                }
                for s in rows
            ]
        }
    )


@bp.post("/stations")
@api_roles(*ADMIN)
def post_station():
    """Add a station.

    ---
    post:
      tags: [stations]
      requestBody:
        required: true
        content:
          application/json:
            schema: {type: object, required: [aet, modality], properties: {aet: {type: string}, name: {type: string}, modality: {type: string}, location: {type: string}, worklist_own_steps_only: {type: boolean}}}
      responses:
        201: {description: Added, content: {application/json: {schema: {type: object}}}}
    """
    body = v.json_body(request)
    st = add_station(
        db(),
        v.text(body, "aet", required=True),
        v.text(body, "modality", required=True, max_len=16),
        name=v.text(body, "name"),
        location=v.text(body, "location"),
        host=v.text(body, "host"),
        port=v.tcp_port(body, "port"),
        own_steps_only=body.get("worklist_own_steps_only") is True,
    )
    commit()
    # The station is Orthanc's allowlist: declare it now, so the scanner can query at once.
    publish_station(settings(), st)
    return jsonify({"aet": st.aet}), 201
