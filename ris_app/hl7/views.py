"""The message store and the outbox for operators: a JSON API and a page."""

from __future__ import annotations

from flask import (
    Blueprint,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from sqlalchemy import select

from ris_app.clock import utcnow
from ris_app.errors import DomainError
from ris_app.hl7.outbound import current_settings
from ris_app.hl7.sender import held_behind
from ris_app.hl7.store import InboundProcessor
from ris_app.model import Hl7Message, Hl7Outbox, InboundStatus, OutboxStatus
from ris_app.web import db, get_or_404, hand_over, settings
from ris_app.web.access import ADMIN, INTEGRATOR, api_roles
from ris_app.web.auth import check_csrf, login_required
from ris_app.web.errors import ApiError

api = Blueprint("hl7_api", __name__, url_prefix="/api/hl7")
pages = Blueprint("hl7_pages", __name__, template_folder="templates")
pages.before_request(check_csrf)

INBOUND_STATUSES = (
    InboundStatus.RECEIVED,
    InboundStatus.PROCESSED,
    InboundStatus.DUPLICATE,
    InboundStatus.ERROR,
    InboundStatus.REJECTED,
)


def _text_of(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def message_json(row: Hl7Message, *, raw: bool = False) -> dict:
    out = {
        "id": row.id,
        "received_at": row.received_at.isoformat(),
        "peer": row.peer,
        "sending_application": row.sending_application,
        "sending_facility": row.sending_facility,
        "control_id": row.control_id,
        "message_type": row.message_type,
        "version": row.version,
        "status": row.status,
        "ack_code": row.ack_code,
        "error": row.error,
        "error_location": row.error_location,
        "summary": row.summary,
        "duplicate_of": row.duplicate_of,
        "attempts": row.attempts,
        "processed_at": row.processed_at.isoformat() if row.processed_at else None,
    }
    if raw:
        out["raw"] = _text_of(row.raw).replace("\r", "\n")
    return out


def outbox_json(row: Hl7Outbox, *, payload: bool = False, held: dict[int, int] | None = None) -> dict:
    out = {
        "id": row.id,
        "created_at": row.created_at.isoformat(),
        "destination": row.destination,
        "message_type": row.message_type,
        "control_id": row.control_id,
        "reference": row.reference,
        "status": row.status,
        "attempts": row.attempts,
        "next_attempt_at": row.next_attempt_at.isoformat(),
        "last_error": row.last_error,
        "ack_code": row.ack_code,
        "sent_at": row.sent_at.isoformat() if row.sent_at else None,
        # The undelivered message to the same destination about the same order it waits for.
        "held_behind": (held if held is not None else held_behind(db(), [row.id])).get(row.id),
    }
    if payload:
        out["payload"] = row.payload.replace("\r", "\n")
    return out


def _limit() -> int:
    try:
        return max(1, min(int(request.args.get("limit", 100)), 1000))
    except ValueError:
        raise ApiError(400, "must be an integer", field="limit") from None


def _messages():
    stmt = select(Hl7Message)
    status = request.args.get("status", "").lower()
    if status:
        if status not in INBOUND_STATUSES:
            raise ApiError(400, f"must be one of {', '.join(INBOUND_STATUSES)}", field="status")
        stmt = stmt.where(Hl7Message.status == status)
    if request.args.get("control_id"):
        stmt = stmt.where(Hl7Message.control_id == request.args["control_id"])
    if request.args.get("message_type"):
        stmt = stmt.where(Hl7Message.message_type == request.args["message_type"].upper())
    return db().scalars(stmt.order_by(Hl7Message.id.desc()).limit(_limit())).all()


def _get(model, row_id: int, what: str):
    return get_or_404(model, row_id, what)


def processor() -> InboundProcessor:
    """This app's one inbound processor (the listener process holds its own): reprocessing
    goes through the same path as a live message."""
    found = current_app.extensions.get("hl7_processor")
    if found is None:
        found = InboundProcessor(current_app.extensions["ris_sessions"], current_settings(), settings())
        current_app.extensions["hl7_processor"] = found
    return found


def reprocess(message_id: int) -> dict:
    """Reprocess a failed message; anything else is refused with 409 (Conflict)."""
    _get(Hl7Message, message_id, "HL7 message")
    hand_over()  # the processor writes in its own transaction: hold no lock here
    outcome = processor().reprocess(message_id)
    db().expire_all()
    return {"id": message_id, "status": outcome.status, "ack_code": outcome.ack_code, "text": outcome.text}


@api.get("/messages")
@api_roles(*INTEGRATOR)
def get_messages():
    """Inbound messages, newest first; ?status=error&control_id=&message_type=&limit=

    ---
    get:
      tags: [hl7]
      parameters:
        - {name: status, in: query, required: false, schema: {type: string}}
        - {name: control_id, in: query, required: false, schema: {type: string}}
        - {name: message_type, in: query, required: false, schema: {type: string}}
        - {name: limit, in: query, required: false, schema: {type: integer}}
      responses:
        200: {description: Messages, content: {application/json: {schema: {$ref: '#/components/schemas/Items'}}}}
    """
    return jsonify({"items": [message_json(r) for r in _messages()]})


@api.get("/messages/<int:message_id>")
@api_roles(*INTEGRATOR)
def get_message(message_id: int):
    """One inbound HL7 message with its text.

    ---
    get:
      tags: [hl7]
      responses:
        200: {description: The message, content: {application/json: {schema: {type: object}}}}
    """
    return jsonify(message_json(_get(Hl7Message, message_id, "HL7 message"), raw=True))


@api.post("/messages/<int:message_id>/reprocess")
@api_roles(*ADMIN)
def post_reprocess(message_id: int):
    """Process a failed inbound message (status error or rejected) again, after fixing data,
    through the same path as a live message. Any other message is refused with 409.

    ---
    post:
      tags: [hl7]
      responses:
        200: {description: The outcome, content: {application/json: {schema: {type: object}}}}
        409: {description: The message did not fail (or is being reprocessed now)}
    """
    return jsonify(reprocess(message_id))


@api.get("/outbox")
@api_roles(*INTEGRATOR)
def get_outbox():
    """Outbound HL7 messages.

    ---
    get:
      tags: [hl7]
      parameters:
        - {name: status, in: query, required: false, schema: {type: string}}
        - {name: reference, in: query, required: false, schema: {type: string}}
        - {name: limit, in: query, required: false, schema: {type: integer}}
      responses:
        200: {description: Messages, content: {application/json: {schema: {$ref: '#/components/schemas/Items'}}}}
    """
    stmt = select(Hl7Outbox)
    if request.args.get("status"):
        stmt = stmt.where(Hl7Outbox.status == request.args["status"].lower())
    if request.args.get("reference"):
        stmt = stmt.where(Hl7Outbox.reference == request.args["reference"])
    rows = db().scalars(stmt.order_by(Hl7Outbox.id.desc()).limit(_limit())).all()
    held = held_behind(db(), [r.id for r in rows])
    return jsonify({"items": [outbox_json(r, payload=True, held=held) for r in rows]})


@api.post("/outbox/<int:outbox_id>/retry")
@api_roles(*ADMIN)
def post_outbox_retry(outbox_id: int):
    """Send again now (a message the peer refused with AE, or one waiting for its next try).

    ---
    post:
      tags: [hl7]
      responses:
        200: {description: Queued again, content: {application/json: {schema: {type: object}}}}
    """
    row = _get(Hl7Outbox, outbox_id, "outbox message")
    if row.status not in OutboxStatus.UNSENT:
        raise ApiError(409, f"this message was {row.status} already", field="id")
    row.status, row.next_attempt_at = OutboxStatus.PENDING, utcnow()
    db().commit()
    return jsonify(outbox_json(row))


@api.post("/outbox/<int:outbox_id>/discard")
@api_roles(*ADMIN)
def post_outbox_discard(outbox_id: int):
    """Give up a message that was not delivered (the peer keeps refusing it): it is never
    sent, and the later messages about the same order no longer wait for it.

    ---
    post:
      tags: [hl7]
      responses:
        200: {description: Discarded, content: {application/json: {schema: {type: object}}}}
        409: {description: The message was sent or discarded already}
    """
    row = _get(Hl7Outbox, outbox_id, "outbox message")
    if row.status not in OutboxStatus.UNSENT:
        raise ApiError(409, f"this message was {row.status} already", field="id")
    row.status = OutboxStatus.DISCARDED
    db().commit()
    return jsonify(outbox_json(row))


@pages.get("/hl7")
@login_required("admin")
def messages_page():
    try:
        rows = _messages()
    except ApiError:
        rows = []
    outbox = db().scalars(select(Hl7Outbox).order_by(Hl7Outbox.id.desc()).limit(50)).all()
    return render_template(
        "hl7_messages.html",
        rows=rows,
        outbox=outbox,
        held=held_behind(db(), [r.id for r in outbox]),
        statuses=INBOUND_STATUSES,
        status=request.args.get("status", ""),
        failed=InboundStatus.FAILED,
    )


@pages.get("/hl7/messages/<int:message_id>")
@login_required("admin")
def message_page(message_id: int):
    """One received message as it arrived, a segment a line, with its outcome."""
    row = get_or_404(Hl7Message, message_id, "HL7 message")
    return render_template("hl7_message.html", m=row, raw=_text_of(row.raw), failed=InboundStatus.FAILED)


@pages.post("/hl7/messages/<int:message_id>/reprocess")
@login_required("admin")
def reprocess_page(message_id: int):
    try:
        result = reprocess(message_id)
        flash(
            f"Message {message_id} reprocessed: {result['ack_code']} {result['text']}",
            "ok" if result["ack_code"] == "AA" else "error",
        )
    except DomainError as exc:
        flash(f"Message {message_id}: {exc.message}", "error")
    return redirect(url_for("hl7_pages.messages_page", status=request.args.get("status", "")))
