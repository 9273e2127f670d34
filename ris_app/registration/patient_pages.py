"""Pages about a patient: finding one (the search page, and the JSON the type-ahead of
every patient chooser asks, static/patients.js), and the patient page with everything
about the person: demographics (edited here, audited as every patient edit), other IDs,
the safety record, orders with their status, studies, reports, likely duplicates."""

from __future__ import annotations

from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for
from sqlalchemy import select

from ris_app.errors import DomainError
from ris_app.model import Patient, Study
from ris_app.registration.duplicates import possible_duplicates
from ris_app.registration.search import LIMIT, names_mrn, search_patients
from ris_app.reporting.lifecycle import report_of
from ris_app.scheduling.orders import find_patient, primary_step
from ris_app.scheduling.pages import SEX_LABELS, _read_patient, patient_fields_context
from ris_app.tracking.corrections import patient_studies, update_patient_everywhere
from ris_app.web import db
from ris_app.web.auth import check_csrf, current_user, login_required
from ris_app.web.forms import Form, commit_or_fail

# Who finds and reads patients: the clinical roles (billing reads charges, not records).
SEES_PATIENTS = ("clerk", "technologist", "radiologist")

bp = Blueprint("patients", __name__)
bp.before_request(check_csrf)

QUERY_MAX = 128
TYPE_AHEAD_LIMIT = 10
# What the edit form changes (the MRN and issuer stay: a wrong MRN is a merge).
EDITABLE = ("family_name", "given_name", "birth_date", "sex", "phone", "email", "address", "insurance")
EDITABLE_FLAGS = ("language", "notify_email", "notify_sms")


def _query() -> str:
    return request.args.get("q", "").strip()[:QUERY_MAX]


def brief(p: Patient) -> dict:
    """A patient as a chooser lists it."""
    return {
        "mrn": p.mrn,
        "name": ", ".join(n for n in (p.family_name, p.given_name) if n),
        "birth_date": p.birth_date.isoformat() if p.birth_date else "",
        "sex": p.sex,
        "merged_into": p.merged_into.mrn if p.merged_into is not None else "",
        "url": url_for("patients.patient_page", mrn=p.mrn),
    }


@bp.get("/patients")
@login_required(*SEES_PATIENTS)
def patients_page():
    """The search page: works without JavaScript (a plain GET form)."""
    q = _query()
    found = search_patients(db(), q, LIMIT) if q else []
    return render_template("patient_search.html", q=q, patients=found, limit=LIMIT, sexes=SEX_LABELS)


@bp.get("/patients/lookup")
@login_required(*SEES_PATIENTS)
def lookup():
    """The type-ahead's answer (a page session, not the API): the best few matches."""
    return jsonify({"items": [brief(p) for p in search_patients(db(), _query(), TYPE_AHEAD_LIMIT)]})


def _not_found(mrn: str):
    return render_template("message.html", title="Not found", text=f"There is no patient {mrn}."), 404


def _form_of(p: Patient) -> dict:
    values = {k: getattr(p, k) or "" for k in EDITABLE}
    values["birth_date"] = p.birth_date.isoformat() if p.birth_date else ""
    return {**values, "mrn": p.mrn, "language": p.language}


def _render(p: Patient, f: Form, status: int = 200):
    s = db()
    orders = sorted(p.orders, key=lambda o: o.created_at, reverse=True)
    linked = patient_studies(s, p)
    unlinked = s.scalars(
        select(Study).where(Study.order_id.is_(None), names_mrn(Study.patient_mrn, p.mrn), Study.deleted_at.is_(None))
    ).all()
    studies = sorted([*linked, *unlinked], key=lambda st: st.first_received_at, reverse=True)
    page = render_template(
        "patient_page.html",
        p=p,
        form=f.data,
        errors=f.errors,
        **patient_fields_context(),
        orders=[(o, primary_step(o)) for o in orders],
        studies=[(st, report_of(s, st)) for st in studies],
        duplicates=possible_duplicates(s, p),
        can_edit=current_user().role in ("clerk", "admin"),
    )
    return page, status


@bp.get("/patients/<mrn>")
@login_required(*SEES_PATIENTS)
def patient_page(mrn: str):
    patient = find_patient(db(), mrn, request.args.get("issuer"))
    if patient is None:
        return _not_found(mrn)
    return _render(patient, Form(_form_of(patient)))


@bp.post("/patients/<mrn>")
@login_required("clerk")
def patient_save(mrn: str):
    """The desk corrects demographics: worklist items follow at once, stored studies are
    queued for correction in Orthanc (as PATCH /api/patients/<mrn>)."""
    patient = find_patient(db(), mrn)
    if patient is None:
        return _not_found(mrn)
    f = Form({**request.form, "mrn": patient.mrn})  # the MRN is not edited here
    data = _read_patient(f)
    if data is None:
        return _render(patient, f, 400)
    changes = {k: getattr(data, k) for k in (*EDITABLE, *EDITABLE_FLAGS)}
    try:
        update_patient_everywhere(db(), patient, changes, user=f"page:{current_user().username}")
    except DomainError as err:
        db().rollback()
        f.fail(err.field or "family_name", err.message)
        return _render(patient, f, 400)
    if not commit_or_fail(f):
        return _render(patient, f, 400)
    flash(f"Patient {patient.mrn} saved.", "ok")  # no name: flashes travel in the cookie
    return redirect(url_for("patients.patient_page", mrn=patient.mrn))
