"""The billing clerk's review page: one day's charges by status, marked reviewed and sent,
corrected with a reason (a credit and a new charge), the exams performed without a charge,
and the day's CSV (the same query as the page, so its total is the page's)."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for

from ris_app.billing import charges
from ris_app.billing import query as q
from ris_app.billing.capture import capture
from ris_app.billing.catalog import parse_amount
from ris_app.clock import site_today
from ris_app.errors import DomainError
from ris_app.model import ScheduledProcedureStep
from ris_app.web import commit, db
from ris_app.web import validation as v
from ris_app.web.auth import check_csrf, login_required

log = logging.getLogger(__name__)
bp = Blueprint("billing", __name__)
bp.before_request(check_csrf)
ROLES = ("billing", "admin")


def _day():
    return v.iso_date(request.values, "date") or site_today()


@bp.get("/billing")
@login_required(*ROLES)
def billing_page():
    day, status = _day(), request.args.get("status", "")
    status = status if status in charges.STATUSES else ""
    rows = q.charges(db(), day=day, status=status)
    return render_template(
        "billing.html",
        day=day,
        status=status,
        statuses=charges.STATUSES,
        rows=rows,
        total=q.amount(q.total_cents(rows)),
        amount=q.amount,
        uncharged=q.uncharged(db(), day),
        can=lambda c, action: c.status in charges.TRANSITIONS[action][0],
    )


@bp.get("/billing/export.csv")
@login_required(*ROLES)
def export_csv():
    day, status = _day(), request.args.get("status", "")
    rows = q.charges(db(), day=day, status=status if status in charges.STATUSES else "")
    return Response(
        q.to_csv(rows),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="charges-{day.isoformat()}.csv"'},
    )


@bp.post("/billing/charges/<int:charge_id>/<action>")
@login_required(*ROLES)
def charge_action(charge_id: int, action: str):
    day = _day()
    f = request.form
    if action not in ("review", "send", "correct"):
        abort(404)
    try:
        charge = charges.find(db(), charge_id)
        if action == "correct":
            price = f.get("unit_price", "").strip()
            quantity = f.get("quantity", "").strip()
            charges.correct(
                charge,
                f.get("reason", ""),
                quantity=int(quantity) if quantity.isdigit() else None,
                unit_price_cents=parse_amount(price) if price else None,
            )
            flash(f"Charge {charge_id} corrected: a credit line and a new charge were added.", "ok")
        elif action == "send":
            charges.send(charge)
            flash(f"Charge {charge_id} sent to the billing system.", "ok")
        else:
            charges.move(charge, action)
        commit()
    except DomainError as err:
        db().rollback()
        flash(f"Charge {charge_id}: {err.message}", "error")
    return redirect(url_for("billing.billing_page", date=day.isoformat(), status=request.args.get("status", "")))


@bp.post("/billing/bulk/<action>")
@login_required(*ROLES)
def bulk_action(action: str):
    """Review every new charge of the day, or send every reviewed one."""
    day = _day()
    if action not in ("review", "send"):
        abort(404)
    wanted = charges.NEW if action == "review" else charges.REVIEWED
    try:
        rows = q.charges(db(), day=day, status=wanted)
        for charge in rows:
            if action == "send":
                charges.send(charge)
            else:
                charges.move(charge, action)
        commit()
        flash(f"{len(rows)} charge(s) {'reviewed' if action == 'review' else 'sent'}.", "ok")
    except DomainError as err:
        db().rollback()
        flash(err.message, "error")
    return redirect(url_for("billing.billing_page", date=day.isoformat()))


@bp.post("/billing/steps/<int:step_id>/capture")
@login_required(*ROLES)
def capture_step(step_id: int):
    """Charge an exam performed without a charge, once its catalog rows exist."""
    day = _day()
    step = db().get(ScheduledProcedureStep, step_id)
    added = capture(step) if step is not None else []
    commit()
    if added:
        flash(f"{len(added)} charge line(s) added.", "ok")
    else:
        flash("Nothing to charge: check the procedure's billing rows.", "error")
    return redirect(url_for("billing.billing_page", date=day.isoformat()))
