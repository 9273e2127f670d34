"""REST API and pages of the worklist: the plugin's C-FIND endpoint, the day's steps,
import of existing items, the C-FIND log and its explainer
(REST API and a page), and the per-station worklist rule."""

from __future__ import annotations

import struct
import time
from datetime import date

from flask import Blueprint, Response, jsonify, render_template, request
from sqlalchemy import select

from ris_app.clock import site_today
from ris_app.model import Station, WorklistQueryLog
from ris_app.orthanc.modalities import publish_station
from ris_app.scheduling.schedule import day_steps
from ris_app.scheduling.serializers import step_json
from ris_app.scheduling.states import SPSStatus
from ris_app.web import db, get_or_404, read_mostly, settings
from ris_app.web import validation as v
from ris_app.web.access import ADMIN, INTEGRATOR, INTERNAL, api_roles
from ris_app.web.auth import login_required
from ris_app.web.errors import ApiError
from ris_app.worklist import query as worklist
from ris_app.worklist.explain import explain, log_query
from ris_app.worklist.importer import import_bytes, split_json_payload

bp = Blueprint("worklist_admin", __name__)


def _uploads() -> list[tuple[str, bytes]]:
    """The items of a request: multipart files, a DICOM body, or a DICOM JSON body."""
    if request.files:
        return [(f.filename or name, f.read()) for name, f in request.files.items(multi=True)]
    ctype = (request.mimetype or "").lower()
    body = request.get_data()
    if not body:
        raise ApiError(400, "send a worklist file (application/dicom) or DICOM JSON", field="body")
    if ctype.endswith("json"):
        payload = request.get_json(silent=True)
        if not isinstance(payload, (dict, list)) or (isinstance(payload, list) and not payload):
            raise ApiError(400, "must be a DICOM JSON object or a list of them", field="body")
        return list(split_json_payload(payload))
    return [("body", body)]


@bp.post("/api/worklist-items")
@api_roles(*INTEGRATOR)
def post_worklist_items():
    """Import worklist items; each is imported whole or not at all. 201 when all were
    imported, 207 when some were skipped, 400 when none was.

    ---
    post:
      tags: [worklist]
      requestBody:
        required: true
        content:
          application/dicom: {schema: {type: string, format: binary}}
          application/json: {schema: {oneOf: [{type: object}, {type: array, items: {type: object}}]}}
          multipart/form-data: {schema: {type: object}}
      responses:
        201: {description: All imported, content: {application/json: {schema: {$ref: '#/components/schemas/ImportReport'}}}}
        207: {description: Some skipped, content: {application/json: {schema: {$ref: '#/components/schemas/ImportReport'}}}}
        400:
          description: Nothing imported (the report says why per item), or no readable body
          content:
            application/json:
              schema:
                oneOf: [{$ref: '#/components/schemas/ImportReport'}, {$ref: '#/components/schemas/Error'}]
    """
    cfg = settings()
    outcomes = [
        import_bytes(db(), data, name, accession_prefix=cfg.accession_prefix, uid_root=cfg.uid_root)
        for name, data in _uploads()
    ]
    good = sum(o.ok for o in outcomes)
    status = 201 if good == len(outcomes) else 207 if good else 400
    return jsonify(
        {"imported": good, "skipped": len(outcomes) - good, "items": [o.as_json() for o in outcomes]}
    ), status


def _entry(query_id: int) -> WorklistQueryLog:
    return get_or_404(WorklistQueryLog, query_id, "logged worklist query", field="query_id")


def _recent(limit: int = 100, calling_aet: str = "") -> list[WorklistQueryLog]:
    stmt = select(WorklistQueryLog)
    if calling_aet:
        stmt = stmt.where(WorklistQueryLog.calling_aet == calling_aet)
    return list(db().scalars(stmt.order_by(WorklistQueryLog.id.desc()).limit(limit)))


def _entry_json(e: WorklistQueryLog) -> dict:
    return {
        "id": e.id,
        "received_at": e.received_at.isoformat(),
        "calling_aet": e.calling_aet,
        "called_aet": e.called_aet,
        "answers": e.answers,
        "incomplete": e.incomplete,
        "duration_ms": e.duration_ms,
    }


@bp.get("/api/worklist/queries")
@api_roles(*ADMIN)
def get_worklist_queries():
    """The latest worklist C-FINDs received.

    ---
    get:
      tags: [worklist]
      parameters:
        - {name: limit, in: query, required: false, schema: {type: integer}}
        - {name: calling_aet, in: query, required: false, schema: {type: string}}
      responses:
        200: {description: Queries, newest first, content: {application/json: {schema: {$ref: '#/components/schemas/Items'}}}}
    """
    try:
        limit = min(int(request.args.get("limit", 100)), 1000)
    except ValueError:
        raise ApiError(400, "must be an integer", field="limit") from None
    return jsonify({"items": [_entry_json(e) for e in _recent(limit, request.args.get("calling_aet", ""))]})


def _explain(query_id: int) -> dict:
    cfg = settings()
    return explain(
        db(),
        _entry(query_id),
        default_statuses=cfg.worklist_statuses,
        limit=cfg.worklist_limit,
        accession=request.args.get("accession_number", ""),
        sps_id=request.args.get("sps_id", ""),
    )


@bp.get("/api/worklist/queries/<int:query_id>/explain")
@api_roles(*ADMIN)
def get_worklist_query_explain(query_id: int):
    """For each step the scanner may have expected, which rule kept it out.

    ---
    get:
      tags: [worklist]
      parameters:
        - {name: accession_number, in: query, required: false, schema: {type: string}}
        - {name: sps_id, in: query, required: false, schema: {type: string}}
      responses:
        200: {description: The explanation, content: {application/json: {schema: {type: object}}}}
    """
    return jsonify(_explain(query_id))


@bp.patch("/api/stations/<aet>")
@api_roles(*ADMIN)
def patch_station(aet: str):
    """Change a station's worklist rule.

    ---
    patch:
      tags: [stations]
      requestBody:
        required: true
        content:
          application/json:
            schema: {type: object, properties: {worklist_own_steps_only: {type: boolean}}}
      responses:
        200: {description: The station, content: {application/json: {schema: {type: object}}}}
    """
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object", field="body")
    station = db().scalar(select(Station).where(Station.aet == aet))
    if station is None:
        raise ApiError(404, "no station with this AE title", field="aet")
    if "worklist_own_steps_only" in body:
        if not isinstance(body["worklist_own_steps_only"], bool):
            raise ApiError(400, "must be true or false", field="worklist_own_steps_only")
        station.worklist_own_steps_only = body["worklist_own_steps_only"]
    if "host" in body:
        station.host = v.ip_host(body, "host")
    if "port" in body:
        station.port = v.tcp_port(body, "port")
    db().commit()
    publish_station(settings(), station)  # Orthanc's allowlist entry follows at once
    return jsonify(
        {
            "aet": station.aet,
            "worklist_own_steps_only": station.worklist_own_steps_only,
            "host": station.host,
            "port": station.port,
        }
    )


# ------------------------------------------------------------------ pages
@bp.get("/worklist/queries")
@login_required("technologist")
def worklist_queries_page():
    return render_template("worklist_queries.html", entries=_recent(200, request.args.get("calling_aet", "")))


@bp.get("/worklist/queries/<int:query_id>")
@login_required("technologist")
def worklist_query_page(query_id: int):
    return render_template("worklist_explain.html", x=_explain(query_id))


@bp.get("/api/worklist")
@api_roles(*INTEGRATOR)
def get_worklist():
    """Scheduled steps of one site day (default the site's today), optionally per station,
    modality, status.

    ---
    get:
      tags: [worklist]
      parameters:
        - {name: date, in: query, required: false, schema: {type: string}}
        - {name: modality, in: query, required: false, schema: {type: string}}
        - {name: station_aet, in: query, required: false, schema: {type: string}}
        - {name: status, in: query, required: false, schema: {type: string}}
      responses:
        200: {description: The day's steps, content: {application/json: {schema: {type: object}}}}
    """
    try:
        day = date.fromisoformat(request.args["date"]) if request.args.get("date") else site_today()
    except ValueError:
        raise ApiError(400, "must be a date as YYYY-MM-DD", field="date") from None
    statuses: list[str] = []
    if request.args.get("status"):
        statuses = [x.strip().upper() for x in request.args["status"].split(",")]
        bad = [x for x in statuses if x not in SPSStatus.__members__]
        if bad:
            raise ApiError(400, f"unknown status {bad[0]}", field="status")
    items = []
    for step in day_steps(
        db(),
        day,
        modality=request.args.get("modality", "").upper(),
        station_aet=request.args.get("station_aet", ""),
        statuses=statuses,
    ):
        order = step.requested_procedure.order
        item = step_json(step)
        item.pop("history")
        item.update(
            accession_number=order.accession_number,
            priority=order.priority,
            patient={
                "mrn": order.patient.mrn,
                "family_name": order.patient.family_name,
                "given_name": order.patient.given_name,
            },
        )
        items.append(item)
    return jsonify({"date": day.isoformat(), "items": items})


@bp.post("/api/internal/worklist/find")
@read_mostly
@api_roles(*INTERNAL)
def post_worklist_find():
    """Called by the Orthanc plugin for each C-FIND MWL. Body: the DICOM query; headers
    X-Calling-AET / X-Called-AET. Answer: the matching items, each framed by a 4-byte
    big-endian length. Every query is logged for the explainer (worklist_explain).

    ---
    post:
      tags: [internal]
      requestBody:
        required: true
        content:
          application/dicom: {schema: {type: string, format: binary}}
      responses:
        200: {description: 'The matching items, each framed by a 4-byte big-endian length', content: {application/octet-stream: {schema: {type: string, format: binary}}}}
    """
    cfg = settings()
    started = time.perf_counter()
    calling = request.headers.get("X-Calling-AET", "").strip()
    try:
        result = worklist.find(
            db(),
            request.get_data(),
            default_statuses=cfg.worklist_statuses,
            limit=cfg.worklist_limit,
            calling_aet=calling,
        )
    except worklist.WorklistQueryError as exc:
        raise ApiError(400, str(exc), field="body") from None
    db().commit()  # end the read (and keep items rebuilt lazily): the log entry is a short write of its own
    log_query(
        db(),
        result.query,
        calling,
        request.headers.get("X-Called-AET", "").strip(),
        result,
        (time.perf_counter() - started) * 1000,
    )
    db().commit()
    payload = b"".join(struct.pack(">I", len(item)) + item for item in result.items)
    resp = Response(payload, mimetype="application/octet-stream")
    resp.headers["X-Worklist-Incomplete"] = "1" if result.incomplete else "0"
    resp.headers["X-Worklist-Count"] = str(len(result.items))
    return resp
