"""Pages for the front desk and the exam rooms: register a patient, place an order, the day's
schedule with check-in and status buttons, an order with its study, the studies received.

Plain HTML forms (no scripts). Every POST carries the session's CSRF token (auth.check_csrf);
who may do what is declared once, on the views (login_required) and in STEP_ACTIONS.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from flask import Blueprint, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from ris_app.clock import from_site, site_today
from ris_app.errors import Conflict, DomainError
from ris_app.model import PRIORITIES, SEXES, ProcedureCode, Station, Study
from ris_app.model import (
    ScheduledProcedureStep as SPS,
)
from ris_app.registration.duplicates import possible_duplicates
from ris_app.reminders.texts import TEXTS as MESSAGE_LANGUAGES
from ris_app.scheduling.api import PATIENT_TEXT_FIELDS
from ris_app.scheduling.fields import check_birth_date
from ris_app.scheduling.orders import (
    OrderData,
    PatientData,
    apply_action,
    create_order,
    create_patient,
    find_order,
    find_patient,
    primary_step,
)
from ris_app.scheduling.schedule import day_steps, reported_orders, shown_status
from ris_app.scheduling.states import TRANSITIONS
from ris_app.tracking.inbox import unmatched_studies
from ris_app.web import commit, db, settings
from ris_app.web import validation as v
from ris_app.web.access import ORDER_READERS
from ris_app.web.auth import (
    check_csrf,
    current_user,
    forbidden,
    has_role,
    login_required,
    safe_next,
)
from ris_app.web.forms import Form, commit_or_fail
from ris_app.web.live import live_page

bp = Blueprint("pages", __name__)
bp.before_request(check_csrf)

SEX_LABELS = {"M": "male", "F": "female", "O": "other", "U": "unknown"}
# Field labels, used by the inputs and by the error summary ("Birth date is in the future").
PATIENT_LABELS = {
    "mrn": "MRN (patient ID)",
    "family_name": "Family name",
    "given_name": "Given name",
    "birth_date": "Birth date",
    "sex": "Sex",
    "phone": "Phone",
    "email": "E-mail",
    "address": "Address",
    "insurance": "Insurance",
    "language": "Language of messages",
    "notify_email": "Appointment messages by e-mail",
    "notify_sms": "Appointment messages by SMS",
}
LINK_METHODS = {"accession": "accession number", "study_uid": "StudyInstanceUID", "sps_id": "scheduled step ID"}
ORDER_LABELS = {
    "mrn": "Patient MRN",
    "procedure_code": "Procedure",
    "station_aet": "Station",
    "scheduled_date": "Date",
    "scheduled_time": "Time",
    "priority": "Priority",
    "referring_physician": "Referring physician",
    "reason_for_exam": "Reason for exam",
}


# ------------------------------------------------------------------ forms
def _name_part(f: Form, name: str, *, required: bool = False) -> str | None:
    # ^ and = separate the components and groups of a DICOM person name: the worklist
    # would split "Anna^Maria" into two parts. validation.text's message names only the
    # backslash, so say it here.
    if any(ch in f.data.get(name, "") for ch in "^="):
        f.fail(name, "may not contain ^ or = (they separate the parts of a DICOM name)")
        return None
    return f.read(v.text, name, required=required, max_len=PATIENT_TEXT_FIELDS[name])


def _birth_date(f: Form) -> date | None:
    born = f.read(v.iso_date, "birth_date")
    try:
        return check_birth_date(born)
    except DomainError as err:
        f.fail("birth_date", err.message)
        return None


def _clock_time(f: Form, name: str) -> time | None:
    value = f.data.get(name, "").strip()
    if not value:
        f.fail(name, "is required")
        return None
    try:
        return time.fromisoformat(value).replace(second=0, microsecond=0)
    except ValueError:
        f.fail(name, "must be a time as HH:MM, e.g. 14:30")
        return None


def _read_patient(f: Form) -> PatientData | None:
    mrn = f.read(v.text, "mrn", required=True, max_len=64)
    family = _name_part(f, "family_name", required=True)
    given = _name_part(f, "given_name")
    born = _birth_date(f)
    sex = f.read(v.choice, "sex", SEXES, default="U")
    contact = {k: f.read(v.text, k, max_len=PATIENT_TEXT_FIELDS[k]) for k in ("phone", "email", "address", "insurance")}
    if contact["email"] and "@" not in contact["email"]:
        f.fail("email", "must be an e-mail address such as name@example.org")
    language = f.read(v.text, "language", max_len=PATIENT_TEXT_FIELDS["language"])  # its rule: check_patient
    if f.errors:
        return None
    return PatientData(
        mrn=mrn,
        family_name=family,
        given_name=given or "",
        birth_date=born,
        sex=sex,
        **{k: val or "" for k, val in contact.items()},
        language=language or "",
        # unticked boxes are not sent: the opt-out per channel
        notify_email="notify_email" in f.data,
        notify_sms="notify_sms" in f.data,
    )


@bp.route("/patients/new", methods=["GET", "POST"])
@login_required("clerk")
def new_patient():
    f = Form(request.form)
    if request.method == "POST":
        data = _read_patient(f)
        if data is not None:
            try:
                patient = create_patient(db(), data)
            except DomainError as err:
                db().rollback()
                f.fail(err.field or "mrn", "is already registered" if isinstance(err, Conflict) else err.message)
            else:
                duplicates = possible_duplicates(db(), patient)
                if commit_or_fail(f, "mrn"):
                    # No name in the message: flashes travel in the (signed, not encrypted) cookie.
                    flash(f"Patient with MRN {patient.mrn} registered. Place an order for the patient below.", "ok")
                    for d in duplicates:  # registered all the same: the desk checks, and merges if so
                        flash(f"Possible duplicate of MRN {d['mrn']}: {'; '.join(d['reasons'])}.", "error")
                    return redirect(url_for("pages.new_order", mrn=patient.mrn))
        return _patient_form(f), 400
    return _patient_form(f)


def patient_fields_context() -> dict:
    """What templates/_patient_fields.html needs beside the form (registration, the patient page)."""
    return {
        "labels": PATIENT_LABELS,
        "sexes": SEX_LABELS,
        "today_iso": site_today().isoformat(),
        "languages": [("", "site default"), *((code, code) for code in MESSAGE_LANGUAGES)],
    }


def _patient_form(f: Form) -> str:
    return render_template("patient_new.html", form=f.data, errors=f.errors, **patient_fields_context())


@bp.route("/orders/new", methods=["GET", "POST"])
@login_required("clerk")
def new_order():
    s = db()
    procedures = s.scalars(select(ProcedureCode).order_by(ProcedureCode.modality, ProcedureCode.code)).all()
    stations = s.scalars(select(Station).order_by(Station.aet)).all()
    f = Form(request.form if request.method == "POST" else request.args)
    f.data.setdefault("scheduled_date", site_today().isoformat())
    mrn = f.data.get("mrn", "").strip()
    patient = find_patient(s, mrn) if mrn else None
    ctx = dict(
        patient=patient,
        labels=ORDER_LABELS,
        sexes=SEX_LABELS,
        procedure_options=[(p.code, f"{p.modality} · {p.description} ({p.code})") for p in procedures],
        station_options=[
            (st.aet, f"{st.aet} · {st.name or st.modality}, {st.location or 'no room'} ({st.modality})")
            for st in stations
        ],
        priority_options=[(p, p.capitalize()) for p in PRIORITIES],
    )
    if request.method == "GET":
        return render_template("order_new.html", form=f.data, errors={}, **ctx)

    f.read(v.text, "mrn", required=True)
    if mrn and patient is None and "mrn" not in f.errors:
        f.fail("mrn", "belongs to no registered patient; register the patient first")
    code = f.data.get("procedure_code", "")
    procedure = next((p for p in procedures if p.code == code), None)
    if procedure is None:
        f.fail("procedure_code", "is not in the procedure catalog" if code else "is required")
    aet = f.data.get("station_aet", "")
    station = next((st for st in stations if st.aet == aet), None)
    if aet and station is None:
        f.fail("station_aet", "is not a known station")
    elif station and procedure and station.modality != procedure.modality:
        f.fail("station_aet", f"is a {station.modality} room; {procedure.description} needs {procedure.modality}")
    day = f.read(v.iso_date, "scheduled_date", required=True)
    at = _clock_time(f, "scheduled_time")
    priority = f.read(v.choice, "priority", PRIORITIES, default="ROUTINE")
    referring = f.read(v.text, "referring_physician", max_len=128, forbid="\\=")
    reason = f.read(v.text, "reason_for_exam", max_len=64)
    if not f.errors:
        cfg = settings()
        data = OrderData(
            patient=patient,
            procedure=procedure,
            modality=procedure.modality,
            scheduled_start=from_site(datetime.combine(day, at)),
            station_aet=station.aet if station else "",
            priority=priority,
            referring_physician=referring or "",
            reason_for_exam=reason or "",
        )
        try:
            order = create_order(s, data, accession_prefix=cfg.accession_prefix, uid_root=cfg.uid_root, source="page")
        except DomainError as err:  # the field rules of scheduling.fields, named on the form
            # the form asks the start as a date and a time: a taken slot is the time's fault
            f.fail(
                {"scheduled_start": "scheduled_time"}.get(err.field or "", err.field or "procedure_code"), err.message
            )
        else:
            if commit_or_fail(f):
                flash(f"Order {order.accession_number} placed.", "ok")
                return redirect(url_for("pages.order_detail", accession=order.accession_number))
    s.rollback()
    return render_template("order_new.html", form=f.data, errors=f.errors, **ctx), 400


# ------------------------------------------------------------------ the schedule and status moves
@dataclass(frozen=True)
class StepAction:
    """A button that moves a scheduled step: who may press it and where it is offered."""

    action: str  # a key of states.TRANSITIONS
    label: str
    roles: tuple[str, ...]
    on_schedule: bool = True  # the schedule offers the everyday moves; the rest are on the order page
    danger: bool = False
    asks_reason: bool = False  # a confirmation page asks why first (order_pages.cancel_page)


# Clerks check patients in (and cancel); technologists run the exam (overview.md, "Who uses it").
STEP_ACTIONS: tuple[StepAction, ...] = (
    StepAction("arrive", "Check in", ("clerk", "technologist")),
    StepAction("ready", "Ready", ("technologist",), on_schedule=False),
    StepAction("start", "Start exam", ("technologist",)),
    StepAction("depart", "Patient left", ("technologist",), on_schedule=False),
    StepAction("complete", "Complete", ("technologist",)),
    StepAction("cancel", "Cancel", ("clerk", "technologist"), danger=True, asks_reason=True),
    StepAction("discontinue", "Discontinue", ("technologist",), on_schedule=False, danger=True),
    StepAction("no_show", "No-show", ("clerk",), danger=True),  # the sync worker marks the rest
)
_ACTION_BY_NAME = {a.action: a for a in STEP_ACTIONS}
_STATUS_ROLES = tuple(sorted({role for a in STEP_ACTIONS for role in a.roles}))


@bp.app_template_global()
def step_actions(step: SPS, *, schedule: bool = False) -> list[StepAction]:
    """The moves the current user may make on `step` from its present status."""
    user = current_user()
    return [
        a
        for a in STEP_ACTIONS
        if step.status in TRANSITIONS[a.action][0] and has_role(user, a.roles) and (a.on_schedule or not schedule)
    ]


def _on_station(step: SPS, station: Station) -> bool:
    # A step for "any station" belongs to every room of its modality.
    aets = step.station_aet.split("\\") if step.station_aet else []
    return station.aet in aets if aets else step.modality == station.modality


@bp.get("/")
@login_required("clerk", "technologist", "radiologist")
@live_page
def today():
    s = db()
    today = site_today()
    day = today
    if request.args.get("date"):
        try:
            day = date.fromisoformat(request.args["date"])
        except ValueError:
            flash("The date must be YYYY-MM-DD; showing today.", "error")
    stations = s.scalars(select(Station).order_by(Station.aet)).all()
    station = next((st for st in stations if st.aet == request.args.get("station")), None)
    steps = day_steps(s, day)
    if station is not None:  # in Python: AE titles are a backslash list, awkward in LIKE
        steps = [st for st in steps if _on_station(st, station)]
    reported = reported_orders(s, [st.requested_procedure.order_id for st in steps])
    shown = {st.id: shown_status(st, reported) for st in steps}  # the state each row shows
    return render_template(
        "today.html",
        steps=steps,
        day=day,
        is_today=day == today,
        stations=stations,
        station=station,
        counts=Counter(shown.values()),
        shown=shown,
        prev_day=day - timedelta(days=1),
        next_day=day + timedelta(days=1),
    )


@bp.post("/orders/<accession>/status")
@login_required(*_STATUS_ROLES)
def order_status(accession: str):
    back = safe_next(request.form.get("next"), url_for("pages.order_detail", accession=accession))
    step_action = _ACTION_BY_NAME.get(request.form.get("action", ""))
    if step_action is None:
        flash("Unknown action.", "error")
        return redirect(back)
    if not has_role(current_user(), step_action.roles):
        return forbidden(f"Your role ({current_user().role}) may not {step_action.label.lower()} an exam.")
    if step_action.asks_reason:  # never one click: the confirmation page asks why
        return redirect(url_for("order_pages.cancel_page", accession=accession, next=back))
    try:
        order = find_order(db(), accession)
    except DomainError:
        return _no_such_order(accession)
    version = request.form.get("version", "")
    try:
        status = apply_action(
            primary_step(order),
            step_action.action,
            source="page",
            expected_version=int(version) if version.isdigit() else None,
        )
        commit()
        flash(f"Order {accession} is now {status.lower()}.", "ok")
    except DomainError as err:
        db().rollback()
        flash(f"Order {accession}: {err.message}.", "error")
    return redirect(back)


# ------------------------------------------------------------------ orders and studies
def _no_such_order(accession: str):
    return render_template("message.html", title="Not found", text=f"There is no order {accession}."), 404


@bp.get("/orders/<accession>")
@login_required(*ORDER_READERS)
@live_page
def order_detail(accession: str):
    try:
        order = find_order(db(), accession)
    except DomainError:
        return _no_such_order(accession)
    studies = (
        db()
        .scalars(select(Study).where(Study.order_id == order.id, Study.deleted_at.is_(None)).order_by(Study.id))
        .all()
    )
    return render_template(
        "order_detail.html",
        order=order,
        rp=order.requested_procedures[0],
        step=primary_step(order),
        shown=shown_status(primary_step(order), reported_orders(db(), [order.id])),
        studies=studies,
        sexes=SEX_LABELS,
        link_methods=LINK_METHODS,
    )


@bp.get("/studies")
@login_required("clerk", "technologist", "radiologist")
def studies():
    only_unmatched = request.args.get("unmatched") in ("1", "true")
    stmt = unmatched_studies() if only_unmatched else select(Study).where(Study.deleted_at.is_(None))
    rows = db().scalars(stmt.order_by(Study.last_received_at.desc()).limit(200)).all()
    any_unmatched = db().scalar(select(unmatched_studies().exists()))
    return render_template(
        "studies.html", studies=rows, only_unmatched=only_unmatched, any_unmatched=bool(any_unmatched)
    )
