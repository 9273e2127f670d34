"""Pages of registration: the patient's safety record, and a radiologist's override of a
safety block on an order (recorded and audited)."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for

from ris_app.errors import DomainError
from ris_app.model.registration import PREGNANCY_STATUSES
from ris_app.registration.duplicates import possible_duplicates
from ris_app.registration.record import insurance_of, latest_lab, record_of
from ris_app.registration.safety import override
from ris_app.scheduling.orders import find_order, find_patient, primary_step
from ris_app.web import commit, db
from ris_app.web.auth import check_csrf, current_user, login_required

bp = Blueprint("registration_pages", __name__)
bp.before_request(check_csrf)


@bp.get("/patients/<mrn>/record")
@login_required()
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
        duplicates=possible_duplicates(db(), patient),
    )


@bp.post("/orders/<accession>/safety-override")
@login_required("radiologist")
def safety_override(accession: str):
    back = url_for("pages.order_detail", accession=accession)
    try:
        step = primary_step(find_order(db(), accession))
        user = current_user()
        override(step, user.username, user.role, request.form.get("reason", ""))
        commit()
        flash(f"Order {accession}: safety block overridden; the exam is released.", "ok")
    except DomainError as err:
        db().rollback()
        flash(f"Order {accession}: {err.message}.", "error")
    return redirect(back)
