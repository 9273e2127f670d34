"""REST API of the front desk: free slots, moving or editing a booked order, and the resources that
make them (opening hours, blocks, procedures per station, durations and preparation).
Reading is for integrators, editing for admin tokens. See docs/api.md#front-desk."""

from __future__ import annotations

from datetime import time, timedelta

from flask import Blueprint, jsonify, request
from sqlalchemy import select

from ris_app.clock import site_today
from ris_app.frontdesk import resources as r
from ris_app.frontdesk.availability import MAX_DAYS, free_slots
from ris_app.frontdesk.booking import ClashPolicy
from ris_app.model import PRIORITIES, ProcedureCode
from ris_app.scheduling.edit import update_order
from ris_app.scheduling.orders import find_order, primary_step, reschedule_step
from ris_app.scheduling.serializers import order_json, site_iso
from ris_app.web import actor, commit, db
from ris_app.web import validation as v
from ris_app.web.access import ADMIN, INTEGRATOR, OVERBOOK, api_roles, current_caller
from ris_app.web.errors import ApiError

bp = Blueprint("frontdesk_api", __name__, url_prefix="/api")


def clash_policy(body: dict) -> ClashPolicy:
    """`"overbook": true` books onto taken time on purpose, for the roles allowed to
    (access.OVERBOOK); without it a clash is a 409."""
    wanted = body.get("overbook", False)
    if not isinstance(wanted, bool):
        raise ApiError(400, "must be true or false", field="overbook")
    if not wanted:
        return ClashPolicy.REFUSE
    caller = current_caller()
    if caller is None or caller.role not in OVERBOOK:
        raise ApiError(403, f"only a token with role {' or '.join(OVERBOOK)} may overbook", field="overbook")
    return ClashPolicy.OVERBOOK


# ------------------------------------------------------------------ free slots
@bp.get("/availability")
@api_roles(*INTEGRATOR)
def get_availability():
    """Free slots for a procedure on one station or every station able to do it.

    ---
    get:
      tags: [front desk]
      parameters:
        - {name: procedure_code, in: query, required: true, schema: {type: string}}
        - {name: date, in: query, required: false, schema: {type: string, format: date}}
        - {name: days, in: query, required: false, schema: {type: integer, minimum: 1, maximum: 31}}
        - {name: station_aet, in: query, required: false, schema: {type: string}}
      responses:
        200: {description: The free slots, content: {application/json: {schema: {type: object}}}}
    """
    args = request.args
    code = v.text(args, "procedure_code", required=True, max_len=16)
    day = v.iso_date(args, "date") or site_today()
    days_text = args.get("days", "1")
    if not days_text.isdigit() or not 1 <= int(days_text) <= MAX_DAYS:
        raise ApiError(400, f"must be a whole number from 1 to {MAX_DAYS}", field="days")
    aet = v.text(args, "station_aet", max_len=16)
    slots = free_slots(db(), day, code, days=int(days_text), station_aet=aet)
    return jsonify(
        {"slots": [{"start": site_iso(s.start), "end": site_iso(s.end), "station_aet": s.station_aet} for s in slots]}
    )


@bp.post("/orders/<accession>/reschedule")
@api_roles(*INTEGRATOR)
def post_reschedule(accession: str):
    """Move an order's waiting step to another time, and station if given.

    ---
    post:
      tags: [front desk]
      requestBody:
        required: true
        content:
          application/json:
            schema: {type: object, required: [scheduled_start], properties: {scheduled_start: {type: string, format: date-time}, station_aet: {type: string}, overbook: {type: boolean}, version: {type: integer}}}
      responses:
        200: {description: The order, content: {application/json: {schema: {$ref: '#/components/schemas/Order'}}}}
        409: {description: The time is taken on that station, or the step changed or started}
    """
    body = v.json_body(request)
    start = v.iso_datetime(body, "scheduled_start", required=True)
    aet = v.aet_list(body, "station_aet")
    policy = clash_policy(body)
    expected = v.expected_version(body, request)
    order = find_order(db(), accession)
    reschedule_step(primary_step(order), start, aet, source="api", clash_policy=policy, expected_version=expected)
    commit()
    return jsonify(order_json(order))


@bp.patch("/orders/<accession>")
@api_roles(*INTEGRATOR)
def patch_order(accession: str):
    """Change what may change before the exam: priority, referring physician, reason for
    exam, notes, procedure, station (the order page's edit; moving in time is reschedule).

    ---
    patch:
      tags: [orders]
      requestBody:
        required: true
        content:
          application/json:
            schema: {type: object, properties: {priority: {type: string, enum: [STAT, HIGH, ROUTINE, MEDIUM, LOW]}, referring_physician: {type: string}, reason_for_exam: {type: string}, notes: {type: string, maxLength: 1024}, procedure_code: {type: string}, station_aet: {type: string}, overbook: {type: boolean}, version: {type: integer}}}
      responses:
        200: {description: The order, content: {application/json: {schema: {$ref: '#/components/schemas/Order'}}}}
        409: {description: The exam started, the new booking clashes, or the order changed since the version sent}
    """
    body = v.json_body(request)
    changes: dict = {}
    if "priority" in body:
        changes["priority"] = v.choice(body, "priority", PRIORITIES)
    for key, max_len, forbid in (
        ("referring_physician", 128, "\\="),
        ("reason_for_exam", 255, "\\"),
        ("notes", 1024, ""),
    ):
        if key in body:
            changes[key] = v.text(body, key, max_len=max_len, forbid=forbid)
    if body.get("procedure_code"):
        code = v.text(body, "procedure_code", max_len=16)
        procedure = db().scalar(select(ProcedureCode).where(ProcedureCode.code == code))
        if procedure is None:
            raise ApiError(400, "not in the procedure catalog", field="procedure_code")
        changes["procedure"] = procedure
    if "station_aet" in body:
        changes["station_aet"] = v.aet_list(body, "station_aet")
    policy = clash_policy(body)
    expected = v.expected_version(body, request)
    order = find_order(db(), accession)
    update_order(primary_step(order), changes, source="api", clash_policy=policy, expected_version=expected)
    commit()
    return jsonify(order_json(order))


def _objects(body: dict, name: str, shape: str, limit: int) -> list[tuple[int, dict]]:
    """The list `name` of a PUT that replaces a station's list: JSON objects of `shape`."""
    items = body.get(name)
    if not isinstance(items, list) or len(items) > limit:
        raise ApiError(400, f"must be a list of at most {limit} {shape}", field=name)
    for n, item in enumerate(items):
        if not isinstance(item, dict):
            raise ApiError(400, f"must be an object {shape}", field=f"{name}[{n}]")
    return list(enumerate(items))


# ------------------------------------------------------------------ opening hours
def _weekday(value: object, field: str) -> int:
    if isinstance(value, str) and value[:3].lower() in r.WEEKDAYS:
        return r.WEEKDAYS.index(value[:3].lower())
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 6:
        return value
    raise ApiError(400, "must be mon..sun (or 0 Monday .. 6 Sunday)", field=field)


def _clock(value: object, field: str) -> time:
    try:
        if not isinstance(value, str) or len(value) != 5:
            raise ValueError
        return time.fromisoformat(value)
    except ValueError:
        raise ApiError(400, "must be a site wall-clock time HH:MM", field=field) from None


def _hours_json(station) -> dict:
    return {
        "station_aet": station.aet,
        "hours": [
            {"weekday": r.WEEKDAYS[h.weekday], "opens": f"{h.opens:%H:%M}", "closes": f"{h.closes:%H:%M}"}
            for h in r.hours_of(db(), station)
        ],
    }


@bp.get("/stations/<aet>/hours")
@api_roles(*INTEGRATOR)
def get_hours(aet: str):
    """A station's weekly opening hours (site wall-clock time).

    ---
    get:
      tags: [front desk]
      responses:
        200: {description: The hours, content: {application/json: {schema: {type: object}}}}
    """
    return jsonify(_hours_json(r.find_station(db(), aet)))


@bp.put("/stations/<aet>/hours")
@api_roles(*ADMIN)
def put_hours(aet: str):
    """Replace a station's weekly opening hours; an empty list: no booking rules.

    ---
    put:
      tags: [front desk]
      requestBody:
        required: true
        content:
          application/json:
            schema: {type: object, required: [hours], properties: {hours: {type: array, items: {type: object, properties: {weekday: {type: string}, opens: {type: string}, closes: {type: string}}}}}}
      responses:
        200: {description: The hours, content: {application/json: {schema: {type: object}}}}
    """
    periods = []
    for n, item in _objects(v.json_body(request), "hours", "{weekday, opens, closes}", 7 * 24):
        periods.append(
            r.Period(
                _weekday(item.get("weekday"), f"hours[{n}].weekday"),
                _clock(item.get("opens"), f"hours[{n}].opens"),
                _clock(item.get("closes"), f"hours[{n}].closes"),
            )
        )
    station = r.find_station(db(), aet)
    r.set_hours(db(), station, periods)
    commit()
    return jsonify(_hours_json(station))


# ------------------------------------------------------------------ blocks
def _block_json(b) -> dict:
    return {
        "id": b.id,
        "start": site_iso(b.start_datetime),
        "end": site_iso(b.end_datetime),
        "kind": b.kind,
        "reason": b.reason,
        "created_by": b.created_by,
        "created_at": b.created_at.isoformat(),
    }


@bp.get("/stations/<aet>/blocks")
@api_roles(*INTEGRATOR)
def get_blocks(aet: str):
    """A station's blocks overlapping [from, to) (site dates; default: from today, 31 days).

    ---
    get:
      tags: [front desk]
      parameters:
        - {name: from, in: query, required: false, schema: {type: string, format: date}}
        - {name: to, in: query, required: false, schema: {type: string, format: date}}
      responses:
        200: {description: The blocks, content: {application/json: {schema: {$ref: '#/components/schemas/Items'}}}}
    """
    first = v.iso_date(request.args, "from") or site_today()
    last = v.iso_date(request.args, "to") or first + timedelta(days=MAX_DAYS)
    start, end = r.whole_days(first, last)
    station = r.find_station(db(), aet)
    return jsonify({"items": [_block_json(b) for b in r.blocks_of(db(), station, start, end)]})


@bp.post("/stations/<aet>/blocks")
@api_roles(*ADMIN)
def post_block(aet: str):
    """Close a station: {start, end} (date-times) or {date, last_date} (whole site days).

    ---
    post:
      tags: [front desk]
      requestBody:
        required: true
        content:
          application/json:
            schema: {type: object, properties: {start: {type: string, format: date-time}, end: {type: string, format: date-time}, date: {type: string, format: date}, last_date: {type: string, format: date}, kind: {type: string, enum: [holiday, maintenance, blocked]}, reason: {type: string}}}
      responses:
        201: {description: The block, content: {application/json: {schema: {type: object}}}}
    """
    body = v.json_body(request)
    first = v.iso_date(body, "date")
    if first is not None:
        start, end = r.whole_days(first, v.iso_date(body, "last_date") or first)
    else:
        start = v.iso_datetime(body, "start", required=True)
        end = v.iso_datetime(body, "end", required=True)
    kind = v.text(body, "kind", max_len=16, default="blocked").lower()
    reason = v.text(body, "reason", max_len=255)
    station = r.find_station(db(), aet)
    block = r.add_block(db(), station, start, end, kind=kind, reason=reason, by=actor())
    commit()
    return jsonify(_block_json(block)), 201


@bp.delete("/stations/<aet>/blocks/<int:block_id>")
@api_roles(*ADMIN)
def delete_block(aet: str, block_id: int):
    """Reopen a station's blocked time.

    ---
    delete:
      tags: [front desk]
      responses:
        204: {description: Removed}
    """
    r.remove_block(db(), r.find_station(db(), aet), block_id)
    commit()
    return "", 204


# ------------------------------------------------------------------ procedures and durations
def _procedures_json(station) -> dict:
    return {
        "station_aet": station.aet,
        "procedures": [
            {"code": p.code, "duration_minutes": minutes, "effective_minutes": minutes or p.default_duration_minutes}
            for p, minutes in r.procedures_of(db(), station)
        ],
    }


@bp.get("/stations/<aet>/procedures")
@api_roles(*INTEGRATOR)
def get_station_procedures(aet: str):
    """The procedures a station does (none listed: every one of its modality).

    ---
    get:
      tags: [front desk]
      responses:
        200: {description: The procedures, content: {application/json: {schema: {type: object}}}}
    """
    return jsonify(_procedures_json(r.find_station(db(), aet)))


@bp.put("/stations/<aet>/procedures")
@api_roles(*ADMIN)
def put_station_procedures(aet: str):
    """Replace the procedures a station does, each with its minutes there (optional).

    ---
    put:
      tags: [front desk]
      requestBody:
        required: true
        content:
          application/json:
            schema: {type: object, required: [procedures], properties: {procedures: {type: array, items: {type: object, properties: {code: {type: string}, duration_minutes: {type: integer}}}}}}
      responses:
        200: {description: The procedures, content: {application/json: {schema: {type: object}}}}
    """
    pairs = []
    for n, item in _objects(v.json_body(request), "procedures", "{code, duration_minutes}", 1000):
        code = v.text(item, "code", required=True, max_len=16)
        pairs.append((r.find_procedure(db(), code, f"procedures[{n}].code"), item.get("duration_minutes")))
    station = r.find_station(db(), aet)
    r.set_procedures(db(), station, pairs)
    commit()
    return jsonify(_procedures_json(station))


@bp.patch("/procedure-codes/<code>")
@api_roles(*ADMIN)
def patch_procedure_code(code: str):
    """Change a procedure's catalog duration or patient preparation text.

    ---
    patch:
      tags: [catalog]
      requestBody:
        required: true
        content:
          application/json:
            schema: {type: object, properties: {default_duration_minutes: {type: integer}, preparation: {type: string}}}
      responses:
        200: {description: The procedure, content: {application/json: {schema: {type: object}}}}
    """
    body = v.json_body(request)
    preparation = body.get("preparation")
    if preparation is not None and not isinstance(preparation, str):
        raise ApiError(400, "must be a string", field="preparation")
    procedure = r.find_procedure(db(), code)
    r.update_procedure(procedure, minutes=body.get("default_duration_minutes"), preparation=preparation)
    commit()
    return jsonify(
        {
            "code": procedure.code,
            "default_duration_minutes": procedure.default_duration_minutes,
            "preparation": procedure.preparation,
        }
    )
