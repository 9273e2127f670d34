"""Pages for clerks and technologists: register, order, today's schedule, study status."""
from __future__ import annotations

from datetime import date, datetime, timedelta

from flask import Blueprint, flash, redirect, render_template, request, url_for
from sqlalchemy import select
from sqlalchemy.orm import contains_eager

from .auth import current_user, login_required
from .errors import ApiError
from .models import (
    PRIORITIES, SEXES, Order, ProcedureCode, RequestedProcedure, ScheduledProcedureStep as SPS,
    Station, Study,
)
from .orders import (
    OrderData, PatientData, apply_action, create_order, create_patient, find_order, find_patient,
    primary_step,
)
from . import validation as v
from .web import db, settings

bp = Blueprint("pages", __name__)


@bp.app_context_processor
def _inject():
    return {"user": current_user()}


@bp.get("/")
@login_required()
def today():
    try:
        day = date.fromisoformat(request.args["date"]) if request.args.get("date") else date.today()
    except ValueError:
        day = date.today()
    start = datetime.combine(day, datetime.min.time())
    steps = db().scalars(
        select(SPS).join(SPS.requested_procedure).join(RequestedProcedure.order).join(Order.patient)
        .options(contains_eager(SPS.requested_procedure).contains_eager(RequestedProcedure.order)
                 .contains_eager(Order.patient))
        .where(SPS.start_datetime >= start, SPS.start_datetime < start + timedelta(days=1))
        .order_by(SPS.start_datetime, SPS.id)
    ).all()
    return render_template("today.html", steps=steps, day=day,
                           prev_day=day - timedelta(days=1), next_day=day + timedelta(days=1))


@bp.route("/patients/new", methods=["GET", "POST"])
@login_required("clerk")
def new_patient():
    form = request.form
    if request.method == "POST":
        try:
            body = {k: form.get(k, "") for k in form}
            patient = create_patient(db(), PatientData(
                mrn=v.text(body, "mrn", required=True),
                family_name=v.text(body, "family_name", required=True, forbid="\\^="),
                given_name=v.text(body, "given_name", forbid="\\^="),
                birth_date=v.iso_date(body, "birth_date"),
                sex=v.choice(body, "sex", SEXES, default="U"),
                phone=v.text(body, "phone"), email=v.text(body, "email", max_len=255),
                address=v.text(body, "address", max_len=512), insurance=v.text(body, "insurance", max_len=255),
            ))
            db().commit()
            flash(f"Patient {patient.family_name} registered.", "ok")
            return redirect(url_for("pages.new_order", mrn=patient.mrn))
        except ApiError as err:
            db().rollback()
            flash(f"{err.field}: {err.message}" if err.field else err.message, "error")
            return render_template("patient_new.html", form=form, sexes=SEXES), 400
    return render_template("patient_new.html", form=form, sexes=SEXES)


@bp.route("/orders/new", methods=["GET", "POST"])
@login_required("clerk")
def new_order():
    s = db()
    procedures = s.scalars(select(ProcedureCode).order_by(ProcedureCode.code)).all()
    stations = s.scalars(select(Station).order_by(Station.aet)).all()
    form = request.form if request.method == "POST" else request.args
    ctx = dict(form=form, procedures=procedures, stations=stations, priorities=PRIORITIES)
    if request.method == "POST":
        try:
            body = {k: form.get(k, "") for k in form}
            patient = find_patient(s, v.text(body, "mrn", required=True))
            if patient is None:
                raise ApiError(400, "no patient with this MRN", field="mrn")
            procedure = s.scalar(select(ProcedureCode).where(ProcedureCode.code == body.get("procedure_code")))
            if procedure is None:
                raise ApiError(400, "choose a procedure", field="procedure_code")
            station_aet = v.aet_list(body, "station_aet")
            order = create_order(s, OrderData(
                patient=patient, procedure=procedure, modality=procedure.modality,
                scheduled_start=v.iso_datetime(body, "scheduled_start", required=True),
                station_aet=station_aet,
                priority=v.choice(body, "priority", PRIORITIES, default="ROUTINE"),
                referring_physician=v.text(body, "referring_physician", max_len=128, forbid="\\="),
                reason_for_exam=v.text(body, "reason_for_exam"),
            ), accession_prefix=settings().accession_prefix, uid_root=settings().uid_root, source="page")
            s.commit()
            flash(f"Order {order.accession_number} placed.", "ok")
            return redirect(url_for("pages.order_detail", accession=order.accession_number))
        except ApiError as err:
            s.rollback()
            flash(f"{err.field}: {err.message}" if err.field else err.message, "error")
            return render_template("order_new.html", **ctx), 400
    return render_template("order_new.html", **ctx)


@bp.get("/orders/<accession>")
@login_required()
def order_detail(accession: str):
    try:
        order = find_order(db(), accession)
    except ApiError:
        return render_template("not_found.html", what=f"order {accession}"), 404
    study = db().scalar(select(Study).where(Study.order_id == order.id).order_by(Study.id).limit(1))
    return render_template("order_detail.html", order=order, step=primary_step(order), study=study,
                           orthanc_url=settings().orthanc_url)


@bp.post("/orders/<accession>/status")
@login_required("clerk", "technologist")
def order_status(accession: str):
    try:
        order = find_order(db(), accession)
        apply_action(primary_step(order), request.form.get("action", ""), source="page")
        db().commit()
    except ApiError as err:
        db().rollback()
        flash(err.message, "error")
    return redirect(request.referrer or url_for("pages.order_detail", accession=accession))


@bp.get("/studies")
@login_required()
def studies():
    rows = db().scalars(select(Study).where(Study.deleted_at.is_(None))
                        .order_by(Study.last_received_at.desc()).limit(200)).all()
    return render_template("studies.html", studies=rows)
