"""The front desk's pages: the calendar (a day of every room, a week of one room or of
all), the waiting list, and moving an exam to another time.

Plain HTML, no scripts: every exam block and free slot is a link, every move a form
button, prev/next day or week are links. Selecting an exam (`?sel=<accession>`) opens
its panel with check-in and no-show (the schedule's own buttons, `pages.order_status`),
reschedule, and the order page (cancel is there). A free slot opens the order form with
station, date, time and procedure filled in. Times are the site's wall clock, labelled.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from flask import Blueprint, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from ris_app.clock import from_site, site_today, site_zone, to_site, zone_name
from ris_app.errors import DomainError
from ris_app.frontdesk.booking import ClashPolicy, SlotTaken
from ris_app.frontdesk.calendar import build, week_of
from ris_app.frontdesk.waiting import REASONS, waiting_list
from ris_app.model import ProcedureCode, Station
from ris_app.scheduling.orders import find_order, primary_step, reschedule_step
from ris_app.scheduling.states import STARTABLE
from ris_app.web import commit, db
from ris_app.web.access import OVERBOOK
from ris_app.web.auth import check_csrf, current_user, has_role, login_required

bp = Blueprint("calendar", __name__)
bp.before_request(check_csrf)
DESK = ("clerk", "admin")
PX_PER_MINUTE = 2.0  # 15 minutes are 30 px: two lines of text


def _day_arg() -> date:
    try:
        return date.fromisoformat(request.args.get("date", ""))
    except ValueError:
        return site_today()


def _common(day: date) -> dict:
    s = db()
    return dict(
        day=day,
        today=site_today(),
        zone=zone_name(site_zone()),
        stations=s.scalars(select(Station).order_by(Station.aet)).all(),
        procedures=s.scalars(select(ProcedureCode).order_by(ProcedureCode.modality, ProcedureCode.code)).all(),
        procedure_code=request.args.get("procedure", ""),
        selected=request.args.get("sel", ""),
        px=PX_PER_MINUTE,
        timedelta=timedelta,
    )


def _selected(grid, accession: str):
    for col in grid.columns:
        for item in col.items:
            if item.step.requested_procedure.order.accession_number == accession:
                return item
    return None


@bp.get("/calendar")
@login_required(*DESK)
def day_page():
    day = _day_arg()
    ctx = _common(day)
    chosen = request.args.get("station", "")
    stations = [st for st in ctx["stations"] if not chosen or st.aet == chosen]
    grid = build(db(), stations, [day], procedure_code=ctx["procedure_code"])
    return render_template(
        "calendar_day.html", grid=grid, station=chosen, sel=_selected(grid, ctx["selected"]), view="day", **ctx
    )


@bp.get("/calendar/week")
@login_required(*DESK)
def week_page():
    day = _day_arg()
    ctx = _common(day)
    days = week_of(day)
    chosen = request.args.get("station", "")
    station = next((st for st in ctx["stations"] if st.aet == chosen), None)
    if station is not None:  # one room: its days as columns, the day view's grid
        grid = build(db(), [station], days, procedure_code=ctx["procedure_code"], by_day=True)
        return render_template(
            "calendar_day.html", grid=grid, station=chosen, sel=_selected(grid, ctx["selected"]), view="week", **ctx
        )
    grid = build(db(), ctx["stations"], days, procedure_code=ctx["procedure_code"])
    cells = {(c.station.aet, c.day): c for c in grid.columns}
    return render_template("calendar_week.html", days=days, cells=cells, station="", view="week", **ctx)


@bp.get("/calendar/waiting")
@login_required(*DESK)
def waiting_page():
    return render_template(
        "calendar_waiting.html", rows=waiting_list(db()), reasons=REASONS, zone=zone_name(site_zone())
    )


@bp.route("/calendar/orders/<accession>/reschedule", methods=["GET", "POST"])
@login_required(*DESK)
def reschedule_page(accession: str):
    s = db()
    try:
        order = find_order(s, accession)
    except DomainError:
        return render_template("message.html", title="Not found", text=f"There is no order {accession}."), 404
    step = primary_step(order)
    stations = [st for st in s.scalars(select(Station).order_by(Station.aet)) if st.modality == step.modality]
    local = to_site(step.start_datetime)
    source = request.form if request.method == "POST" else request.args
    form = {
        "date": source.get("date") or local.date().isoformat(),
        "time": source.get("time") or local.strftime("%H:%M"),
        "station": source.get("station", step.station_aet.split("\\")[0] if step.station_aet else ""),
    }
    may_overbook = has_role(current_user(), OVERBOOK)
    status = 200
    if request.method == "POST":
        status = _reschedule(step, form, stations, may_overbook)
        if status == 302:
            return redirect(url_for("calendar.day_page", date=form["date"], station=form["station"], sel=accession))
    return render_template(
        "calendar_reschedule.html",
        order=order,
        step=step,
        stations=stations,
        form=form,
        may_overbook=may_overbook,
        movable=step.status in STARTABLE,
        zone=zone_name(site_zone()),
    ), status


def _reschedule(step, form: dict, stations: list[Station], may_overbook: bool) -> int:
    """Move the step as the form asks; the page's status (302 when it moved)."""
    accession = step.requested_procedure.order.accession_number
    try:
        start = from_site(datetime.combine(date.fromisoformat(form["date"]), time.fromisoformat(form["time"])))
    except ValueError:
        flash("Give the date as YYYY-MM-DD and the time as HH:MM.", "error")
        return 400
    if form["station"] not in {st.aet for st in stations}:
        flash(f"Choose a {step.modality} room.", "error")
        return 400
    policy = ClashPolicy.OVERBOOK if may_overbook and request.form.get("overbook") else ClashPolicy.REFUSE
    version = request.form.get("version", "")
    try:
        reschedule_step(
            step,
            start,
            form["station"],
            source="page",
            clash_policy=policy,
            expected_version=int(version) if version.isdigit() else None,
        )
        commit()
    except SlotTaken as err:
        db().rollback()
        flash(f"Not moved: {err.message}. Choose another time.", "error")
        return 409
    except DomainError as err:
        db().rollback()
        flash(f"Order {accession}: {err.message}.", "error")
        return 409
    flash(f"Order {accession} moved to {to_site(start):%Y-%m-%d %H:%M} on {form['station']}.", "ok")
    return 302
