"""The booking clashes page (clerks): steps accepted over time already taken (from HL7 or
an import) wait here until a clerk moves one (reschedule, under the booking rule) or
keeps it. And `booking_outcome`, which the order page shows: out of hours, clash, overbook."""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, flash, redirect, render_template, request, url_for

from ris_app.clock import from_site, site_zone, to_site, zone_name
from ris_app.errors import DomainError
from ris_app.frontdesk.booking import ClashPolicy
from ris_app.frontdesk.clashes import BookingOutcome, flagged_steps, keep_booking, outcome_of
from ris_app.model import ScheduledProcedureStep as SPS
from ris_app.scheduling.orders import find_order, primary_step, reschedule_step
from ris_app.web import commit, db
from ris_app.web import validation as v
from ris_app.web.auth import check_csrf, login_required
from ris_app.web.forms import Form

bp = Blueprint("clashes", __name__)
bp.before_request(check_csrf)

DESK = ("clerk",)  # who resolves clashes (admin may do everything)
LABELS = {"date": "Date", "time": "Time", "station_aet": "Station"}


@bp.app_template_global()
def booking_outcome(step: SPS) -> BookingOutcome:
    return outcome_of(step)


@bp.get("/clashes")
@login_required(*DESK)
def clashes_page():
    steps = flagged_steps(db())
    return render_template("clashes.html", steps=steps, zone=zone_name(site_zone()), local=to_site)


def _version(form) -> int | None:
    version = form.get("version", "")
    return int(version) if version.isdigit() else None


@bp.post("/clashes/<accession>/keep")
@login_required(*DESK)
def keep(accession: str):
    try:
        keep_booking(primary_step(find_order(db(), accession)), _version(request.form))
        commit()
        flash(f"Order {accession}: the booking is kept as it is.", "ok")
    except DomainError as err:
        db().rollback()
        flash(f"Order {accession}: {err.message}.", "error")
    return redirect(url_for("clashes.clashes_page"))


@bp.post("/clashes/<accession>/reschedule")
@login_required(*DESK)
def reschedule(accession: str):
    """Move the step to a free time: the booking rule refuses time still taken (the same
    rule and message as the order form)."""
    f = Form(request.form)
    day = f.read(v.iso_date, "date", required=True)
    at = f.read(v.text, "time", required=True, max_len=5)
    aet = f.read(v.text, "station_aet", max_len=16)
    if not f.errors:
        try:
            start = from_site(datetime.combine(day, datetime.strptime(at, "%H:%M").time()))
        except ValueError:
            f.fail("time", "must be a time as HH:MM, e.g. 14:30")
    if not f.errors:
        try:
            step = primary_step(find_order(db(), accession))
            reschedule_step(
                step,
                start,
                aet or "",
                source="page",
                clash_policy=ClashPolicy.REFUSE,
                expected_version=_version(f.data),
            )
            commit()
            flash(f"Order {accession} moved to {day} {at}.", "ok")
            return redirect(url_for("clashes.clashes_page"))
        except DomainError as err:
            db().rollback()
            f.fail({"scheduled_start": "time", "station_aet": "station_aet"}.get(err.field or "", ""), err.message)
    reasons = "; ".join(f"{LABELS[k]} {m}" if k in LABELS else m for k, m in f.errors.items())
    flash(f"Order {accession} not moved: {reasons}.", "error")
    return redirect(url_for("clashes.clashes_page"))
