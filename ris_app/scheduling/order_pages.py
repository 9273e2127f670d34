"""The order page's edit and cancel: what the desk changes before the exam, and a cancel
that asks why first (no one-click cancel: STEP_ACTIONS' asks_reason).

Both run the write path the API and HL7 run (scheduling.edit.update_order,
scheduling.orders.apply_action), under the version the page read, so the worklist, the
EHR's messages, the patient's messages and the audit trail follow as for any other change.
Plain HTML forms: they work without scripts.
"""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from ris_app.errors import DomainError
from ris_app.model import PRIORITIES, ProcedureCode, Station
from ris_app.scheduling.edit import CANCEL_REASONS, EDITABLE, cancel_reason, update_order
from ris_app.scheduling.orders import apply_action, find_order, primary_step
from ris_app.scheduling.pages import STEP_ACTIONS, _no_such_order
from ris_app.scheduling.states import TRANSITIONS
from ris_app.web import db
from ris_app.web import validation as v
from ris_app.web.auth import check_csrf, login_required, safe_next
from ris_app.web.forms import Form, commit_or_fail
from ris_app.web.live import REFRESH_SECONDS

bp = Blueprint("order_pages", __name__)
bp.before_request(check_csrf)


@bp.app_context_processor
def _order_page_context() -> dict:
    # live_every: seconds between a live page's refreshes; editable: when "Edit order" shows
    return {"live_every": REFRESH_SECONDS, "editable": EDITABLE}


EDIT_LABELS = {
    "procedure_code": "Procedure",
    "station_aet": "Station",
    "priority": "Priority",
    "referring_physician": "Referring physician",
    "reason_for_exam": "Reason for exam",
    "notes": "Notes for the exam",
    "reason": "Reason",
    "reason_text": "In your words",
}
CANCEL_ROLES = next(a.roles for a in STEP_ACTIONS if a.action == "cancel")
# A refusal of the booking rule names the start; on this form the room is what changed.
_FIELD_ON_FORM = {"scheduled_start": "station_aet", "modality": "procedure_code"}


def _version(f: Form) -> int | None:
    value = f.data.get("version", "")
    return int(value) if value.isdigit() else None


@bp.route("/orders/<accession>/edit", methods=["GET", "POST"])
@login_required("clerk")
def edit_page(accession: str):
    s = db()
    try:
        order = find_order(s, accession)
    except DomainError:
        return _no_such_order(accession)
    step, rp = primary_step(order), order.requested_procedures[0]
    if step.status not in EDITABLE:
        flash(f"Order {accession} is {step.status.lower()}: it can no longer be edited.", "error")
        return redirect(url_for("pages.order_detail", accession=accession))
    procedures = s.scalars(select(ProcedureCode).order_by(ProcedureCode.modality, ProcedureCode.code)).all()
    stations = s.scalars(select(Station).order_by(Station.aet)).all()
    current = {
        "procedure_code": rp.procedure_code.code if rp.procedure_code else "",
        "station_aet": step.station_aet,
        "priority": order.priority,
        "referring_physician": order.referring_physician,
        "reason_for_exam": order.reason_for_exam,
        "notes": order.notes,
        "version": str(step.lock_version),
    }
    f = Form(request.form if request.method == "POST" else current)
    if request.method == "POST":
        code = f.data.get("procedure_code", "")
        procedure = next((p for p in procedures if p.code == code), None)
        if procedure is None:
            f.fail("procedure_code", "is not in the procedure catalog" if code else "is required")
        aet = f.data.get("station_aet", "")
        if aet and aet != step.station_aet and not any(st.aet == aet for st in stations):
            f.fail("station_aet", "is not a known station")
        changes = {
            "procedure": procedure,
            "station_aet": aet,
            "priority": f.read(v.choice, "priority", PRIORITIES, default="ROUTINE"),
            "referring_physician": f.read(v.text, "referring_physician", max_len=128, forbid="\\=") or "",
            "reason_for_exam": f.read(v.text, "reason_for_exam", max_len=255) or "",
            "notes": f.read(v.text, "notes", max_len=1024, forbid="") or "",
        }
        if not f.errors:
            try:
                changed = update_order(step, changes, source="page", expected_version=_version(f))
            except DomainError as err:
                f.fail(_FIELD_ON_FORM.get(err.field or "", err.field or ""), err.message)
            else:
                if commit_or_fail(f):
                    labels = ", ".join(EDIT_LABELS.get(k, k).lower() for k in changed)
                    flash(f"Order {accession}: {labels} changed." if changed else "Nothing changed.", "ok")
                    return redirect(url_for("pages.order_detail", accession=accession))
        s.rollback()
    return render_template(
        "order_edit.html",
        order=order,
        step=step,
        form=f.data,
        errors=f.errors,
        labels=EDIT_LABELS,
        procedure_options=[(p.code, f"{p.modality} · {p.description} ({p.code})") for p in procedures],
        station_options=[(st.aet, f"{st.aet} · {st.name or st.modality} ({st.modality})") for st in stations],
        priority_options=[(p, p.capitalize()) for p in PRIORITIES],
    ), (400 if f.errors else 200)


@bp.route("/orders/<accession>/cancel", methods=["GET", "POST"])
@login_required(*CANCEL_ROLES)
def cancel_page(accession: str):
    s = db()
    try:
        order = find_order(s, accession)
    except DomainError:
        return _no_such_order(accession)
    step = primary_step(order)
    back = safe_next(request.values.get("next"), url_for("pages.order_detail", accession=accession))
    if step.status not in TRANSITIONS["cancel"][0]:
        flash(f"Order {accession} is {step.status.lower()}: it cannot be canceled.", "error")
        return redirect(back)
    f = Form(request.form if request.method == "POST" else {"version": str(step.lock_version)})
    if request.method == "POST":
        try:
            reason = cancel_reason(f.data.get("reason", ""), f.data.get("reason_text", ""))
        except DomainError as err:
            f.fail(err.field or "reason", err.message)
        else:
            try:
                apply_action(step, "cancel", source="page", expected_version=_version(f), reason=reason)
            except DomainError as err:
                f.fail("", err.message)
            else:
                if commit_or_fail(f):
                    flash(f"Order {accession} is now canceled ({reason}).", "ok")
                    return redirect(back)
        s.rollback()
    return render_template(
        "order_cancel.html",
        order=order,
        step=step,
        rp=order.requested_procedures[0],
        form=f.data,
        errors=f.errors,
        labels=EDIT_LABELS,
        reasons=CANCEL_REASONS,
        back=back,
    ), (400 if f.errors else 200)
