"""REST API of registration beyond the patient resource (which carries the record, see
scheduling/api.py): finding patients by name, birth date, MRN or phone, and by another
identifier."""

from __future__ import annotations

from flask import Blueprint, jsonify, request
from sqlalchemy import select

from ris_app.model import Patient, PatientIdentifier
from ris_app.registration.search import LIMIT, MAX_LIMIT, search_patients
from ris_app.scheduling.serializers import patient_json
from ris_app.web import db
from ris_app.web import validation as v
from ris_app.web.access import INTEGRATOR, api_roles
from ris_app.web.errors import ApiError

bp = Blueprint("registration_api", __name__, url_prefix="/api")


@bp.get("/patients")
@api_roles(*INTEGRATOR)
def get_patients():
    """Find patients: ?q= a name (accents and case ignored), a birth date (YYYY-MM-DD), an
    MRN or its beginning, or a phone number (digits compared); best first.

    ---
    get:
      tags: [patients]
      parameters:
        - {name: q, in: query, required: true, schema: {type: string, maxLength: 128}}
        - {name: limit, in: query, required: false, schema: {type: integer, minimum: 1, maximum: 50, default: 20}}
      responses:
        200: {description: The patients found, content: {application/json: {schema: {$ref: '#/components/schemas/Items'}}}}
    """
    query = v.text(request.args, "q", required=True, max_len=128)
    try:
        limit = int(request.args.get("limit", LIMIT))
    except ValueError:
        raise ApiError(400, "must be a whole number", field="limit") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise ApiError(400, f"must be between 1 and {MAX_LIMIT}", field="limit")
    return jsonify({"items": [patient_json(p) for p in search_patients(db(), query, limit)]})


@bp.get("/patient-identifiers/<value>")
@api_roles(*INTEGRATOR)
def get_patients_by_identifier(value: str):
    """The patients holding an identifier other than their MRN (national, insurance, another
    site's number), with its type and authority.

    ---
    get:
      tags: [patients]
      responses:
        200: {description: The patients, content: {application/json: {schema: {$ref: '#/components/schemas/Items'}}}}
    """
    rows = db().execute(
        select(Patient.mrn, Patient.issuer, PatientIdentifier.type_code, PatientIdentifier.authority)
        .join(PatientIdentifier, PatientIdentifier.patient_id == Patient.id)
        .where(PatientIdentifier.value == value)
        .order_by(Patient.id)
        .limit(100)
    )
    return jsonify(
        {
            "items": [
                {"mrn": mrn, "issuer": issuer, "type_code": type_code, "authority": authority}
                for mrn, issuer, type_code, authority in rows
            ]
        }
    )
