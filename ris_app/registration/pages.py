"""Pages of registration: the patient's safety record (read and added to), and a
radiologist's override of a safety block on an order (recorded and audited)."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for

from ris_app.errors import DomainError
from ris_app.model.registration import MR_SAFETY, PREGNANCY_STATUSES, SEVERITIES
from ris_app.registration.duplicates import possible_duplicates
from ris_app.registration.record import (
    INSURANCE_FIELDS,
    add_allergy,
    add_implant,
    insurance_of,
    latest_lab,
    record_of,
    update_insurance,
    update_record,
)
from ris_app.registration.safety import override
from ris_app.scheduling.orders import find_order, find_patient, patient_changed, primary_step
from ris_app.web import commit, db
from ris_app.web.auth import check_csrf, current_user, login_required

bp = Blueprint("registration_pages", __name__)
bp.before_request(check_csrf)


def _commit_or_flash(change, ok: str, failed: str, *, with_field: bool = False) -> None:
    """Run `change` and commit, with a message either way (a domain error rolls back)."""
    try:
        change()
        commit()
        flash(ok, "ok")
    except DomainError as err:
        db().rollback()
        flash(f"{failed}{(err.field or 'record') + ' ' if with_field else ''}{err.message}.", "error")


@bp.get("/patients/<mrn>/record")
@login_required("clerk", "technologist", "radiologist")
def patient_record(mrn: str):
    patient = find_patient(db(), mrn, request.args.get("issuer"))
    if patient is None:
        return render_template("message.html", title="Not found", text=f"There is no patient {mrn}."), 404
    return render_template(
        "patient_record.html",
        p=patient,
        rec=record_of(patient),
        insurance=insurance_of(patient),
        egfr=latest_lab(patient, "egfr"),
        creatinine=latest_lab(patient, "creatinine"),
        pregnancy=PREGNANCY_STATUSES,
        mr_safety=MR_SAFETY,
        severities=SEVERITIES,
        duplicates=possible_duplicates(db(), patient),
    )


# Form field -> record field; empty numbers and dates are left as they are.
_RECORD_FORM = ("pregnancy_status", "weight_kg", "height_m", "measured_on", "mobility", "interpreter")


@bp.post("/patients/<mrn>/record")
@login_required("clerk", "technologist", "radiologist")
def patient_record_save(mrn: str):
    """The desk adds to the record: measures, needs, pregnancy, insurance, an allergy, an implant."""
    back = url_for("registration_pages.patient_record", mrn=mrn)
    form = request.form
    patient = find_patient(db(), mrn)
    if patient is None:
        return render_template("message.html", title="Not found", text=f"There is no patient {mrn}."), 404

    def save() -> None:
        changes = {k: form[k] for k in _RECORD_FORM if form.get(k, "").strip() or k in ("mobility", "interpreter")}
        update_record(patient, changes)
        update_insurance(patient, {k: form.get(k, "") for k in INSURANCE_FIELDS})
        if form.get("allergy_agent", "").strip():
            add_allergy(
                patient,
                form["allergy_agent"],
                reaction=form.get("allergy_reaction", ""),
                severity=form.get("allergy_severity") or "unknown",
                source=f"page:{current_user().username}",
            )
        if form.get("implant_description", "").strip():
            add_implant(patient, form["implant_description"], form.get("implant_mr_safety") or "unknown")
        patient_changed(patient)  # the worklist items show the record

    _commit_or_flash(save, f"Record of MRN {mrn} saved.", "Not saved: ", with_field=True)
    return redirect(back)


@bp.post("/orders/<accession>/safety-override")
@login_required("radiologist")
def safety_override(accession: str):
    back = url_for("pages.order_detail", accession=accession)

    def release() -> None:
        user = current_user()
        override(primary_step(find_order(db(), accession)), user.username, user.role, request.form.get("reason", ""))

    _commit_or_flash(
        release, f"Order {accession}: safety block overridden; the exam is released.", f"Order {accession}: "
    )
    return redirect(back)
