"""Setup pages (admins): the stations with their opening hours, blocks and procedures, and
the procedure catalog with durations and preparation text.

The pages read the form and call the same domain functions as the API
(frontdesk/resources.py): the rules live there, and their refusals come back as field
errors on the form. Plain HTML forms, CSRF on every POST (auth.check_csrf)."""

from __future__ import annotations

import functools
import re
from datetime import datetime, time, timedelta

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from sqlalchemy import or_, select

from ris_app.clock import from_site, site_today, site_zone, to_site, zone_name
from ris_app.errors import DomainError
from ris_app.frontdesk import resources as r
from ris_app.model import BLOCK_KINDS, ProcedureCode, Station
from ris_app.orthanc.modalities import publish_station
from ris_app.web import actor, db
from ris_app.web import validation as v
from ris_app.web.auth import check_csrf, login_required
from ris_app.web.forms import Form, commit_or_fail

bp = Blueprint("setup", __name__, url_prefix="/setup")
bp.before_request(check_csrf)

DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
STATION_LABELS = {
    "name": "Station name",
    "location": "Room",
    "modality": "Modality",
    **{f"hours_{d}": DAY_NAMES[n] for n, d in enumerate(r.WEEKDAYS)},
    "block_kind": "Kind",
    "block_reason": "Reason",
    "block_date": "From day",
    "block_last_date": "To day",
    "block_from": "From time",
    "block_to": "To time",
}
CATALOG_LABELS = {
    "code": "Code",
    "description": "Description",
    "modality": "Modality",
    "default_duration_minutes": "Minutes",
    "preparation": "Patient preparation",
}
# A domain refusal's field -> the form field that shows it.
BLOCK_FIELDS = {"kind": "block_kind", "reason": "block_reason", "end": "block_to", "last_date": "block_last_date"}
_PERIOD = re.compile(r"(\d{1,2}):(\d{2})\s*[-\u2013]\s*(\d{1,2}):(\d{2})")


def _minutes(text: str) -> int | str | None:
    """A minutes field as typed: a whole number, else the text, which the domain refuses
    with its own reason (check_minutes); blank: none."""
    text = text.strip()
    if not text:
        return None
    return int(text) if re.fullmatch(r"-?\d{1,7}", text) else text


def _fail(f: Form, err: DomainError, fields: dict[str, str], default: str) -> None:
    f.fail(fields.get(err.field or "", err.field if err.field in f.data else default), err.message)


# ------------------------------------------------------------------ stations
NEW_STATION_LABELS = {
    "aet": "AE title",
    "name": "Station name",
    "modality": "Modality",
    "location": "Room",
    "host": "IP address",
    "port": "DICOM port",
}


@bp.route("/stations", methods=["GET", "POST"])
@login_required("admin")
def stations():
    """The stations, and a form that adds one (as POST /api/stations does)."""
    f = Form(request.form if request.method == "POST" else {})
    if request.method == "POST":
        port = f.data.get("port", "").strip()
        if port and not port.isdigit():
            f.fail("port", "must be a whole number from 1 to 65535")
        else:
            try:
                st = r.add_station(
                    db(),
                    f.data.get("aet", ""),
                    f.data.get("modality", ""),
                    name=f.data.get("name", ""),
                    location=f.data.get("location", ""),
                    host=f.data.get("host", ""),
                    port=int(port) if port else None,
                )
            except DomainError as err:
                db().rollback()
                _fail(f, err, {"station_aet": "aet"}, "aet")
        if not f.errors and commit_or_fail(f, "aet"):
            publish_station(current_app.config["RIS"], st)  # Orthanc's allowlist: the scanner may query at once
            flash(f"Station {st.aet} added: set its opening hours to follow the booking rules.", "ok")
            return redirect(url_for("setup.station", aet=st.aet))
    rows = db().scalars(select(Station).order_by(Station.aet)).all()
    return render_template(
        "setup_stations.html",
        stations=[(st, _hours_text(st), len(r.procedures_of(db(), st))) for st in rows],
        form=f.data,
        errors=f.errors,
        labels=NEW_STATION_LABELS,
    ), (400 if f.errors else 200)


def _hours_text(station: Station) -> dict[str, str]:
    """Each weekday's periods as the form shows them: "08:00-12:00, 13:00-17:00"."""
    days: dict[str, list[str]] = {d: [] for d in r.WEEKDAYS}
    for h in r.hours_of(db(), station):
        days[r.WEEKDAYS[h.weekday]].append(f"{h.opens:%H:%M}-{h.closes:%H:%M}")
    return {d: ", ".join(p) for d, p in days.items()}


def _station_view(view):
    """The routes under /stations/<aet>: the view gets the station, or the page is a 404."""

    @functools.wraps(view)
    def wrapper(aet: str, **kwargs):
        station = db().scalar(select(Station).where(Station.aet == aet))
        if station is None:
            return render_template("message.html", title="Not found", text=f"There is no station {aet}."), 404
        return view(station, **kwargs)

    return wrapper


def _station_page(station: Station, f: Form | None = None, status: int = 200):
    """The station's page; `f`, a refused form, goes back with its values and errors."""
    form = {
        "name": station.name,
        "location": station.location,
        "modality": station.modality,
        **{f"hours_{d}": text for d, text in _hours_text(station).items()},
        "block_kind": "blocked",
        "block_date": site_today().isoformat(),
    }
    doing = dict(r.procedures_of(db(), station))
    catalog = db().scalars(
        select(ProcedureCode)
        .where(or_(ProcedureCode.modality == station.modality, ProcedureCode.id.in_([p.id for p in doing])))
        .order_by(ProcedureCode.code)
    )
    procedures = []
    for p in catalog:
        form[f"min_{p.id}"] = str(doing.get(p) or "")
        procedures.append((p, p in doing))
    labels = STATION_LABELS | {f"min_{p.id}": f"{p.code} minutes" for p, _ in procedures}
    if f is not None:
        form.update(f.data)
        if any(k.startswith("min_") for k in f.errors):  # the ticks as sent, not as stored
            procedures = [(p, f"do_{p.id}" in f.data) for p, _ in procedures]
    today = site_today()
    start, end = r.whole_days(today - timedelta(days=1), today + timedelta(days=365))
    blocks = r.blocks_of(db(), station, start, end)
    return render_template(
        "setup_station.html",
        station=station,
        form=form,
        errors=f.errors if f is not None else {},
        labels=labels,
        weekdays=list(zip(r.WEEKDAYS, DAY_NAMES, strict=True)),
        blocks=[(b, *_block_span(b)) for b in blocks],
        kinds=[(k, k) for k in BLOCK_KINDS],
        procedures=procedures,
        zone=zone_name(site_zone()),
    ), status


def _block_span(block) -> tuple[str, str]:
    """A block as the admin entered it: whole site days as their first and last day, a
    time range with its times."""
    start, end = to_site(block.start_datetime), to_site(block.end_datetime)
    if start.time() == end.time() == time(0):
        return f"{start:%Y-%m-%d}", f"{end.date() - timedelta(days=1)} (whole days)"
    return f"{start:%Y-%m-%d %H:%M}", f"{end:%Y-%m-%d %H:%M}"


def _saved(f: Form, station: Station, what: str):
    if commit_or_fail(f):
        flash(f"{station.aet}: {what} saved.", "ok")
        return redirect(url_for("setup.station", aet=station.aet))
    return _station_page(station, f, 400)


@bp.route("/stations/<aet>", methods=["GET", "POST"])
@login_required("admin")
@_station_view
def station(station: Station):
    if request.method == "GET":
        return _station_page(station)
    f = Form(request.form)
    for name in ("name", "location", "modality"):
        try:
            r.update_station(station, **{name: f.data.get(name, "")})
        except DomainError as err:
            f.fail(name, err.message)
    if f.errors:
        db().rollback()
        return _station_page(station, f, 400)
    return _saved(f, station, "name, room and modality")


def _periods(f: Form, day: int, name: str) -> list[r.Period]:
    periods = []
    for part in filter(None, (p.strip() for p in f.data.get(name, "").split(","))):
        m = _PERIOD.fullmatch(part)
        try:
            if m is None:
                raise ValueError
            h1, m1, h2, m2 = (int(x) for x in m.groups())
            periods.append(r.Period(day, time(h1, m1), time(h2, m2)))
        except ValueError:
            f.fail(name, "must be periods as HH:MM-HH:MM, separated by commas (e.g. 08:00-12:00, 13:00-17:00)")
    return periods


@bp.post("/stations/<aet>/hours")
@login_required("admin")
@_station_view
def hours(station: Station):
    f = Form(request.form)
    every = []
    for n, d in enumerate(r.WEEKDAYS):
        periods = _periods(f, n, f"hours_{d}")
        try:
            r.check_hours(periods)  # the rules of set_hours, per day: the error lands on its day
        except DomainError as err:
            f.fail(f"hours_{d}", err.message)
        every += periods
    if not f.errors:
        r.set_hours(db(), station, every)
        return _saved(f, station, "opening hours")
    return _station_page(station, f, 400)


@bp.post("/stations/<aet>/blocks")
@login_required("admin")
@_station_view
def add_block(station: Station):
    f = Form(request.form)
    first = f.read(v.iso_date, "block_date", required=True)
    last = f.read(v.iso_date, "block_last_date") or first
    reason = f.read(v.text, "block_reason", max_len=255)
    times = [f.data.get(k, "").strip() for k in ("block_from", "block_to")]
    clock: list[time | None] = [None, None]
    for n, name in enumerate(("block_from", "block_to")):
        if any(times) and not times[n]:
            f.fail(name, "is required with the other time (leave both empty for whole days)")
        elif times[n]:
            try:
                clock[n] = time.fromisoformat(times[n])
            except ValueError:
                f.fail(name, "must be a time as HH:MM, e.g. 14:30")
    if not f.errors:
        try:
            if clock[0] and clock[1]:
                start = from_site(datetime.combine(first, clock[0]))
                end = from_site(datetime.combine(last, clock[1]))
            else:
                start, end = r.whole_days(first, last)
            kind = f.data.get("block_kind", "").strip().lower()
            r.add_block(db(), station, start, end, kind=kind, reason=reason or "", by=actor())
        except DomainError as err:
            _fail(f, err, BLOCK_FIELDS, "block_date")
    if f.errors:
        db().rollback()
        return _station_page(station, f, 400)
    return _saved(f, station, "block")


@bp.post("/stations/<aet>/blocks/<int:block_id>/delete")
@login_required("admin")
@_station_view
def delete_block(station: Station, block_id: int):
    try:
        r.remove_block(db(), station, block_id)
    except DomainError as err:
        flash(f"{station.aet}: {err.message}.", "error")
        return redirect(url_for("setup.station", aet=station.aet))
    return _saved(Form(request.form), station, "block removal")


@bp.post("/stations/<aet>/procedures")
@login_required("admin")
@_station_view
def procedures(station: Station):
    f = Form(request.form)
    chosen = [p for p in db().scalars(select(ProcedureCode).order_by(ProcedureCode.code)) if f"do_{p.id}" in f.data]
    try:
        r.set_procedures(db(), station, [(p, _minutes(f.data.get(f"min_{p.id}", ""))) for p in chosen])
    except DomainError as err:
        m = re.fullmatch(r"procedures\[(\d+)\]\..*", err.field or "")
        f.fail(f"min_{chosen[int(m.group(1))].id}" if m else "", err.message)
        db().rollback()
        return _station_page(station, f, 400)
    return _saved(f, station, "procedures")


# ------------------------------------------------------------------ procedure catalog
def _catalog_page(f: Form, procedure: ProcedureCode | None = None, status: int = 200):
    rows = db().scalars(select(ProcedureCode).order_by(ProcedureCode.modality, ProcedureCode.code)).all()
    return render_template(
        "setup_catalog.html",
        procedures=rows,
        procedure=procedure,
        form=f.data,
        errors=f.errors,
        labels=CATALOG_LABELS,
        max_preparation=r.MAX_PREPARATION,
    ), status


@bp.route("/catalog", methods=["GET", "POST"])
@login_required("admin")
def catalog():
    f = Form(request.form if request.method == "POST" else {})
    if request.method == "GET":
        return _catalog_page(f)
    try:
        p = r.add_procedure(
            db(),
            f.data.get("code", ""),
            f.data.get("description", ""),
            f.data.get("modality", ""),
            minutes=_minutes(f.data.get("default_duration_minutes", "")),
            preparation=f.data.get("preparation", ""),
        )
    except DomainError as err:
        db().rollback()
        _fail(f, err, {}, "code")
        return _catalog_page(f, status=400)
    if commit_or_fail(f, "code"):
        flash(f"Procedure {p.code} added.", "ok")
        return redirect(url_for("setup.catalog"))
    return _catalog_page(f, status=400)


@bp.route("/catalog/<code>", methods=["GET", "POST"])
@login_required("admin")
def procedure(code: str):
    p = db().scalar(select(ProcedureCode).where(ProcedureCode.code == code))
    if p is None:
        return render_template("message.html", title="Not found", text=f"There is no procedure {code}."), 404
    if request.method == "GET":
        data = {
            "description": p.description,
            "modality": p.modality,
            "default_duration_minutes": str(p.default_duration_minutes),
            "preparation": p.preparation,
        }
        return _catalog_page(Form(data), p)
    f = Form(request.form)
    minutes = _minutes(f.data.get("default_duration_minutes", ""))
    for name, changes in (
        ("description", {"description": f.data.get("description", "")}),
        ("modality", {"modality": f.data.get("modality", "")}),
        ("default_duration_minutes", {"minutes": minutes if minutes is not None else ""}),
        ("preparation", {"preparation": f.data.get("preparation", "")}),
    ):
        try:
            r.update_procedure(p, **changes)
        except DomainError as err:
            f.fail(name, err.message)
    if f.errors or not commit_or_fail(f):
        db().rollback()
        return _catalog_page(f, p, 400)
    flash(f"Procedure {p.code} saved.", "ok")
    return redirect(url_for("setup.catalog"))
