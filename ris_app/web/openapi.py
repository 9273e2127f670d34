"""The OpenAPI 3 document of the REST API, generated from the code at /api/openapi.json.

Every `/api/` view describes its operation in YAML after a `---` line of its docstring
(apispec's FlaskPlugin reads it); this module adds what all operations share, so that it
is said once: the path parameters (from the route's converters), the bearer token, and
the error answers, whose body is `ris_app.errors.error_body`. A test checks that every
`/api/` rule of the app has a documented operation with its responses.
"""

from __future__ import annotations

import inspect

from apispec import APISpec
from apispec_webframeworks.flask import FlaskPlugin
from flask import Blueprint, Flask, current_app, jsonify
from werkzeug.routing import IntegerConverter

from ris_app.model.audit import ACTOR_KINDS, OUTCOMES
from ris_app.web.access import open_route
from ris_app.web.validation import MAX_ID

bp = Blueprint("openapi", __name__)
OPEN_OPERATIONS = {"/api/health", "/api/openapi.json"}  # no token needed

ERROR_SCHEMA = {  # ris_app.errors.error_body
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "stable, machine-readable: invalid, not_found, ..."},
                "message": {"type": "string"},
                "field": {"type": "string", "description": "the input at fault, when there is one"},
            },
        }
    },
}
ERRORS = {
    "400": "Malformed input; `field` names it",
    "401": "No valid bearer token",
    "403": "The token's role may not call this",
    "404": "What the path names does not exist (or no such route)",
    "405": "Method not allowed on this path",
    "409": "Clashes with what is stored (a duplicate, a state that does not allow the move)",
    "422": "A safety rule blocks this exam for this patient (registration.safety); a radiologist may override it",
    "413": "Request body too large",
    "415": "Unsupported media type",
    "503": "A part the request needs (Orthanc, the database) cannot be reached",
}

# The record parts of a patient (registration): two objects and four arrays.
_RECORD_ARRAYS = {
    "allergies": "Allergy",
    "implants": "Implant",
    "lab_results": "LabResult",
    "other_identifiers": "OtherIdentifier",
}


def _record_parts(notes: dict[str, str], default_note: str) -> dict:
    parts: dict = {
        "record": {"$ref": "#/components/schemas/PatientRecord"},
        "insurance_details": {"$ref": "#/components/schemas/Insurance"},
    }
    for name, schema in _RECORD_ARRAYS.items():
        parts[name] = {"type": "array", "items": {"$ref": f"#/components/schemas/{schema}"}}
        if notes.get(name, default_note):
            parts[name]["description"] = notes.get(name, default_note)
    return parts


SCHEMAS = {
    "Error": ERROR_SCHEMA,
    "Patient": {
        "type": "object",
        "properties": {
            "mrn": {"type": "string"},
            "issuer": {"type": "string"},
            "family_name": {"type": "string"},
            "given_name": {"type": "string"},
            "middle_name": {"type": "string"},
            "name_prefix": {"type": "string"},
            "name_suffix": {"type": "string"},
            "birth_date": {"type": "string", "format": "date", "nullable": True},
            "sex": {"type": "string", "enum": ["M", "F", "O", "U"]},
            "phone": {"type": "string"},
            "email": {"type": "string"},
            "address": {"type": "string"},
            "insurance": {"type": "string"},
            "language": {"type": "string"},
            "notify_email": {"type": "boolean"},
            "notify_sms": {"type": "boolean"},
            "merged_into": {"type": "string", "nullable": True},
            **_record_parts({}, ""),
            "possible_duplicates": {
                "type": "array",
                "description": "registration only: patients who may be this one, with why",
                "items": {
                    "type": "object",
                    "properties": {
                        "mrn": {"type": "string"},
                        "issuer": {"type": "string"},
                        "reasons": {"type": "array", "items": {"type": "string"}},
                    },
                },
            },
        },
    },
    "PatientRecord": {
        "type": "object",
        "properties": {
            "pregnancy_status": {
                "type": "string",
                "enum": ["", "not_pregnant", "possibly_pregnant", "pregnant", "unknown"],
            },
            "pregnancy_recorded_on": {"type": "string", "format": "date", "nullable": True},
            "weight_kg": {"type": "number", "nullable": True},
            "height_m": {"type": "number", "nullable": True},
            "measured_on": {"type": "string", "format": "date", "nullable": True},
            "mobility": {"type": "string", "maxLength": 64},
            "interpreter": {"type": "string", "maxLength": 64, "description": "language needed; empty: none"},
        },
    },
    "Insurance": {
        "type": "object",
        "properties": {k: {"type": "string"} for k in ("payer", "plan", "member_number", "group_number", "subscriber")},
    },
    "Allergy": {
        "type": "object",
        "required": ["agent"],
        "properties": {
            "agent": {"type": "string"},
            "agent_class": {
                "type": "string",
                "enum": ["", "iodinated", "gadolinium", "contrast"],
                "description": "empty: from the agent's words",
            },
            "reaction": {"type": "string"},
            "severity": {"type": "string", "enum": ["mild", "moderate", "severe", "unknown"]},
        },
    },
    "Implant": {
        "type": "object",
        "required": ["description"],
        "properties": {
            "description": {"type": "string"},
            "mr_safety": {"type": "string", "enum": ["safe", "conditional", "unsafe", "unknown"]},
        },
    },
    "LabResult": {
        "type": "object",
        "required": ["test", "value", "observed_at"],
        "properties": {
            "test": {"type": "string", "enum": ["creatinine", "egfr"]},
            "value": {"type": "number"},
            "unit": {"type": "string"},
            "code": {"type": "string", "description": "LOINC"},
            "observed_at": {"type": "string", "format": "date-time"},
        },
    },
    "OtherIdentifier": {
        "type": "object",
        "required": ["value"],
        "properties": {"value": {"type": "string"}, "type_code": {"type": "string"}, "authority": {"type": "string"}},
    },
    "PatientInput": {
        "type": "object",
        "properties": {
            "mrn": {"type": "string", "maxLength": 64},
            "issuer": {"type": "string", "maxLength": 64},
            "family_name": {"type": "string", "maxLength": 64},
            "given_name": {"type": "string", "maxLength": 64},
            "middle_name": {"type": "string", "maxLength": 64},
            "name_prefix": {"type": "string", "maxLength": 64},
            "name_suffix": {"type": "string", "maxLength": 64},
            "birth_date": {"type": "string", "format": "date"},
            "sex": {"type": "string", "enum": ["M", "F", "O", "U"]},
            "phone": {"type": "string"},
            "email": {"type": "string"},
            "address": {"type": "string"},
            "insurance": {"type": "string"},
            "language": {"type": "string", "maxLength": 8, "description": "messages' language (en, fr, de)"},
            "notify_email": {"type": "boolean", "description": "false: the patient opted out of e-mails"},
            "notify_sms": {"type": "boolean", "description": "false: the patient opted out of SMS"},
            **_record_parts({"allergies": "the whole list", "implants": "the whole list"}, "added"),
        },
    },
    "Order": {
        "type": "object",
        "properties": {
            "accession_number": {"type": "string"},
            "study_instance_uid": {"type": "string"},
            "status": {"type": "string"},
            "version": {"type": "integer", "description": "the step's version; send it back to move the step"},
            "scheduled_procedure_step": {"type": "object"},
            "safety": {
                "type": "object",
                "description": "the safety check: findings [{rule, action, message, overridden}], hold, hold_reason, override {by, at, reason, rules}",
            },
            "preauth": {
                "type": "object",
                "nullable": True,
                "properties": {"number": {"type": "string"}, "status": {"type": "string"}},
            },
        },
    },
    "Items": {
        "type": "object",
        "required": ["items"],
        "properties": {"items": {"type": "array", "items": {"type": "object"}}},
    },
    "Correction": {
        "type": "object",
        "properties": {"correction": {"type": "object"}, "tasks": {"type": "array", "items": {"type": "object"}}},
    },
    "Ok": {"type": "object", "properties": {"ok": {"type": "boolean"}}},
    "AuditEvent": {  # ris_app.audit.api.event_json
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "at": {"type": "string", "format": "date-time", "description": "UTC, with its offset"},
            "actor": {"type": "string", "description": "user name, token name, AE title, HL7 application"},
            "actor_kind": {"type": "string", "enum": list(ACTOR_KINDS)},
            "address": {"type": "string"},
            "action": {"type": "string", "description": "patient.read, order.create, login.failed, ..."},
            "outcome": {"type": "string", "enum": list(OUTCOMES)},
            "patient_mrn": {"type": "string"},
            "accession": {"type": "string"},
            "resource": {"type": "string"},
            "detail": {"type": "string"},
            "seq": {"type": "integer", "nullable": True, "description": "place in the hash chain; null until sealed"},
        },
    },
    "ImportReport": {
        "type": "object",
        "required": ["imported", "skipped", "items"],
        "properties": {
            "imported": {"type": "integer"},
            "skipped": {"type": "integer"},
            "items": {"type": "array", "items": {"type": "object"}},
        },
    },
}


def _path_parameters(rule) -> list[dict]:
    params = []
    for name, converter in rule._converters.items():  # Werkzeug's map of a rule's variables
        schema = (
            {"type": "integer", "minimum": 0, "maximum": MAX_ID}
            if isinstance(converter, IntegerConverter)
            else {"type": "string", "minLength": 1}
        )
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    return params


def build_spec(app: Flask) -> dict:
    """The document, from the app's rules and the YAML of each /api/ view's docstring."""
    from ris_app import __version__

    spec = APISpec(
        title="orthanc-ris REST API",
        version=__version__,
        openapi_version="3.0.3",
        plugins=[FlaskPlugin()],
        info={"description": "See docs/api.md. Every operation but the open ones takes `Authorization: Bearer`."},
    )
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    for name, schema in SCHEMAS.items():
        spec.components.schema(name, schema)
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint)):
        if not rule.rule.startswith("/api/"):
            continue
        view = app.view_functions[rule.endpoint]
        before = {k: dict(v) for k, v in spec._paths.items()}
        spec.path(view=view, app=app, parameters=_path_parameters(rule) or None)
        _add_shared(spec, rule, before, _summary(view))
    return spec.to_dict()


def _summary(view) -> str:
    """The first paragraph of the view's docstring: what the operation does, said once."""
    doc = inspect.getdoc(view) or ""
    return " ".join(doc.split("---")[0].split("\n\n")[0].split())


def _add_shared(spec: APISpec, rule, before: dict, summary: str) -> None:
    """Summary, security and the error answers, on the operations this rule just added."""
    for path, operations in spec._paths.items():
        for method, op in operations.items():
            if method == "parameters" or before.get(path, {}).get(method) is op:
                continue
            if summary:
                op.setdefault("summary", summary)
            responses = op.setdefault("responses", {})
            for status, text in ERRORS.items():
                responses.setdefault(
                    status,
                    {
                        "description": text,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                    },
                )
            if rule.rule not in OPEN_OPERATIONS:
                op.setdefault("security", [{"bearer": []}])
            else:
                op.setdefault("security", [])


@bp.get("/api/openapi.json")
@open_route
def openapi_json():
    """The OpenAPI 3 document of this API (open: it holds no data).
    ---
    get:
      tags: [meta]
      responses:
        200:
          description: The OpenAPI 3 document
          content:
            application/json:
              schema: {type: object}
    """
    spec = current_app.extensions.get("ris_openapi")
    if spec is None:
        spec = current_app.extensions["ris_openapi"] = build_spec(current_app)
    return jsonify(spec)
