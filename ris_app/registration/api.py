"""REST API of registration beyond the patient resource (which carries the record, see
scheduling/api.py): finding patients by another identifier."""

from __future__ import annotations

from flask import Blueprint, jsonify
from sqlalchemy import select

from ris_app.model import Patient, PatientIdentifier
from ris_app.web import db
from ris_app.web.access import INTEGRATOR, api_roles

bp = Blueprint("registration_api", __name__, url_prefix="/api")


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
