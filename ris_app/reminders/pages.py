"""Pages of the patient's messages: the outbox list for the front desk (what was sent,
when, what failed), and the two pages the links of a message open, with no login.

A link opens a page that says what it will do and asks for one press of a button (a
POST): mail and chat programs open links to preview them, and a preview must not cancel
an appointment. The signed token in the URL is the only credential, so these forms need
no CSRF token (a cross-site form would have to know the token already). The cancel goes
the way of a cancel at the desk: `scheduling.orders.apply_action(step, "cancel")`, so the
worklist, the HL7 status and the patient's messages follow (step_changed).
"""

from __future__ import annotations

import logging

from flask import Blueprint, render_template, request
from sqlalchemy import select

from ris_app.clock import site_zone, to_site, utcnow, zone_name
from ris_app.errors import DomainError, Gone
from ris_app.model import Reminder
from ris_app.model.reminders import STATES
from ris_app.reminders.links import open_link
from ris_app.reminders.texts import WHEN, place_of
from ris_app.scheduling.orders import apply_action
from ris_app.web import commit, db, settings
from ris_app.web.access import open_route
from ris_app.web.auth import check_csrf, login_required

log = logging.getLogger(__name__)
desk = Blueprint("reminders", __name__)
desk.before_request(check_csrf)
patient = Blueprint("appointment", __name__)  # no login, no CSRF: see the module
PAGE_SIZE = 200


@desk.get("/reminders")
@login_required("clerk", "admin")
def reminders_page():
    state = request.args.get("state", "")
    stmt = select(Reminder).order_by(Reminder.id.desc()).limit(PAGE_SIZE)
    if state in STATES:
        stmt = stmt.where(Reminder.state == state)
    rows = list(db().scalars(stmt))
    return render_template("reminders.html", rows=rows, state=state, states=STATES, zone=zone_name(site_zone()))


@patient.route("/appointment/<any(confirm, cancel):action>/<token>", methods=["GET", "POST"])
@open_route
def appointment(action: str, token: str):
    session, cfg = db(), settings()
    try:
        found = open_link(session, cfg.secret_key, action, token)
    except DomainError as err:
        code = 410 if isinstance(err, Gone) else 400
        log.info("appointment link refused (%s): %s", code, err.message)
        return render_template("appointment.html", error=err.message, done=False), code
    step = found.step
    shown = {
        "when": f"{to_site(step.start_datetime).strftime(WHEN)} ({zone_name(site_zone())})",
        "place": place_of(step, cfg),
        "procedure": step.description or step.modality,
    }
    if request.method == "GET":
        return render_template("appointment.html", action=action, shown=shown, done=False, error="")
    if action == "cancel":
        apply_action(step, "cancel", source="patient-link")
    else:
        step.patient_confirmed_at = utcnow()
    commit()
    log.info("appointment %s by the patient's link (step %d)", action, step.id)
    return render_template("appointment.html", action=action, shown=shown, done=True, error="")


def register(app) -> None:
    app.register_blueprint(desk)
    app.register_blueprint(patient)
