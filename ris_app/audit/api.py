"""`GET /api/audit`: the audit trail for admin tokens (a privacy officer's tools, a SIEM).

Reading the trail is itself a read of patient data: each call is recorded (audit.read).
"""

from __future__ import annotations

from flask import Blueprint, current_app, g, jsonify, request

from ris_app.audit.query import COLUMNS, AuditFilter, read_cursor, read_limit, search
from ris_app.audit.trail import Who, record_read
from ris_app.model.audit import AuditEvent
from ris_app.web import db
from ris_app.web.access import ADMIN, api_roles

bp = Blueprint("audit_api", __name__, url_prefix="/api")


def request_who() -> Who:
    """Who makes this request: the page user or the API token, and the address it came
    from. (The recording part of the trail may hold the one shared version of this.)"""
    user, caller = g.get("user"), g.get("caller")
    address = (request.remote_addr or "")[:64]
    if user is not None:
        return Who(user.username, "user", address)
    if caller is not None:
        return Who(caller.name, "token", address)
    return Who("anonymous", "user", address)


def record(action: str, filt: AuditFilter, resource: str) -> None:
    """Record that the trail was read (or exported) with this filter."""
    record_read(
        current_app.extensions["ris_sessions"],
        action,
        request_who(),
        resource=resource,
        mrn=filt.mrn,
        detail=filt.describe(),
    )


def event_json(event: AuditEvent) -> dict:
    out: dict = {"id": event.id}
    for name in COLUMNS:
        out[name] = event.at.isoformat() if name == "at" else getattr(event, name)
    out["seq"] = event.seq  # its place in the hash chain; null until sealed (about a second)
    return out


@bp.get("/audit")
@api_roles(*ADMIN)
def get_audit():
    """Audit events, newest first; ?mrn=&user=&action=&from=&to=&limit=&cursor=

    `from` and `to` are days (YYYY-MM-DD) in the site's time zone, both included. `action`
    is an action name (patient.read) or its first word (patient: every patient.* action).
    `next_cursor` goes back as `cursor` for the next (older) page; null on the last one.
    ---
    get:
      tags: [audit]
      parameters:
        - {name: mrn, in: query, required: false, schema: {type: string}}
        - {name: user, in: query, required: false, schema: {type: string}}
        - {name: action, in: query, required: false, schema: {type: string}}
        - {name: from, in: query, required: false, schema: {type: string, format: date}}
        - {name: to, in: query, required: false, schema: {type: string, format: date}}
        - {name: limit, in: query, required: false, schema: {type: integer, minimum: 1, maximum: 1000}}
        - {name: cursor, in: query, required: false, schema: {type: string}}
      responses:
        200:
          description: One page of events
          content:
            application/json:
              schema:
                type: object
                required: [items, next_cursor]
                properties:
                  items: {type: array, items: {$ref: '#/components/schemas/AuditEvent'}}
                  next_cursor: {type: string, nullable: true}
    """
    filt = AuditFilter.from_args(request.args)
    limit, cursor = read_limit(request.args.get("limit")), read_cursor(request.args.get("cursor"))
    page = search(db(), filt, limit=limit, cursor=cursor)
    record("audit.read", filt, "/api/audit")  # before the answer leaves: no unrecorded read
    next_cursor = str(page.next_cursor) if page.next_cursor is not None else None
    return jsonify({"items": [event_json(e) for e in page.events], "next_cursor": next_cursor})
