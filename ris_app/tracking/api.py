"""REST API of image tracking: sync status, the unmatched-studies inbox (link, undo),
patient merge, the exam journey, the studies list, and the plugin's study events and
feed-status report. See docs/api.md."""

from __future__ import annotations

import requests
from flask import Blueprint, jsonify, request
from sqlalchemy import select

from ris_app.model import OrthancTask, Study, StudyCorrection
from ris_app.orthanc.client import OrthancClient, OrthancError
from ris_app.scheduling.orders import find_order, find_patient
from ris_app.scheduling.serializers import study_json
from ris_app.tracking import state as sync_state
from ris_app.tracking.corrections import coerce_if_needed, link_study, merge_patients, undo
from ris_app.tracking.events import StudyEvent, apply_study_event
from ris_app.tracking.inbox import candidates, unmatched_studies
from ris_app.tracking.journey import journey
from ris_app.web import actor, db, get_or_404, hand_over, settings, write_with_retry
from ris_app.web import validation as v
from ris_app.web.access import ADMIN, INTEGRATOR, INTERNAL, api_roles
from ris_app.web.errors import ApiError

bp = Blueprint("tracking_api", __name__, url_prefix="/api")


def orthanc_last_change() -> int | None:
    try:
        return OrthancClient(settings(), timeout=1).changes_last()
    except (OrthancError, requests.RequestException, ValueError):
        return None


def sync_summary() -> dict:
    return sync_state.summary(db(), orthanc_last_change())


def correction_json(c: StudyCorrection) -> dict:
    return {
        "id": c.id,
        "action": c.action,
        "study_instance_uid": c.study.study_instance_uid if c.study else None,
        "before": c.before,
        "after": c.after,
        "by": c.performed_by,
        "at": c.created_at.isoformat(),
        "undone_by": c.undone_by_id,
    }


def task_json(t: OrthancTask) -> dict:
    return {
        "id": t.id,
        "kind": t.kind,  # modify; or a report signature's task (reporting.md)
        "state": t.state,
        "attempts": t.attempts,
        "error": t.error or None,
        "replace": t.replace,
        "study_instance_uid": t.study.study_instance_uid,
        "done_at": t.done_at.isoformat() if t.done_at else None,
    }


def _study(suid: str) -> Study:
    study = db().scalar(select(Study).where(Study.study_instance_uid == suid))
    if study is None:
        raise ApiError(404, "no study with this StudyInstanceUID", field="study_instance_uid")
    return study


def _tasks_of(correction: StudyCorrection) -> list[dict]:
    return [task_json(t) for t in db().scalars(select(OrthancTask).where(OrthancTask.correction_id == correction.id))]


@bp.get("/sync")
@api_roles(*INTEGRATOR)
def get_sync():
    """State of the study-event feed from Orthanc.

    ---
    get:
      tags: [tracking]
      responses:
        200: {description: The sync state, content: {application/json: {schema: {type: object}}}}
    """
    return jsonify(sync_summary())


@bp.post("/sync/reconcile")
@api_roles(*ADMIN)
def post_reconcile():
    """Reconcile now (the sync worker also does it on a timer).

    ---
    post:
      tags: [tracking]
      responses:
        200: {description: What was reconciled, content: {application/json: {schema: {type: object}}}}
    """
    from flask import current_app

    from ris_app.tracking.reconcile import reconcile

    hand_over()
    try:
        report = reconcile(current_app.extensions["ris_sessions"], OrthancClient(settings()))
    except OrthancError as exc:
        raise ApiError(503, str(exc)) from None
    return jsonify(report.__dict__)


@bp.post("/internal/feed-status")
@api_roles(*INTERNAL)
def post_feed_status():
    """Report the plugin's change-feed cursor (the Orthanc plugin calls it).

    ---
    post:
      tags: [internal]
      requestBody:
        required: true
        content:
          application/json:
            schema: {type: object, required: [cursor, last, delivered], properties: {cursor: {type: integer}, last: {type: integer}, delivered: {type: integer}}}
      responses:
        200: {description: Recorded, content: {application/json: {schema: {$ref: '#/components/schemas/Ok'}}}}
    """
    body = v.json_body(request)
    try:
        value = {k: int(body[k]) for k in ("cursor", "last", "delivered")}
    except (KeyError, TypeError, ValueError):
        raise ApiError(400, "cursor, last and delivered must be integers", field="body") from None
    sync_state.put(db(), sync_state.FEED, value)
    db().commit()
    return jsonify({"ok": True})


@bp.post("/studies/<suid>/link")
@api_roles(*INTEGRATOR)
def post_link(suid: str):
    """Link a received study to an order.

    ---
    post:
      tags: [tracking]
      requestBody:
        required: true
        content:
          application/json:
            schema: {type: object, required: [accession_number], properties: {accession_number: {type: string}}}
      responses:
        201: {description: Linked; the Orthanc corrections queued, content: {application/json: {schema: {$ref: '#/components/schemas/Correction'}}}}
    """
    body = v.json_body(request)
    order = find_order(db(), v.text(body, "accession_number", required=True, max_len=16))
    # Who linked it is the token that asked, never a name the caller sends.
    correction = link_study(db(), _study(suid), order, user=actor()[:64])
    db().commit()
    return jsonify({"correction": correction_json(correction), "tasks": _tasks_of(correction)}), 201


@bp.get("/corrections")
@api_roles(*INTEGRATOR)
def get_corrections():
    """The latest study corrections.

    ---
    get:
      tags: [tracking]
      parameters:
        - {name: study_instance_uid, in: query, required: false, schema: {type: string}}
      responses:
        200: {description: Corrections, newest first, content: {application/json: {schema: {$ref: '#/components/schemas/Items'}}}}
    """
    stmt = select(StudyCorrection).order_by(StudyCorrection.id.desc()).limit(100)
    if request.args.get("study_instance_uid"):
        stmt = stmt.where(StudyCorrection.study_id == _study(request.args["study_instance_uid"]).id)
    return jsonify({"items": [correction_json(c) for c in db().scalars(stmt)]})


@bp.post("/corrections/<int:correction_id>/undo")
@api_roles(*ADMIN)
def post_undo(correction_id: int):
    """Undo a correction.

    ---
    post:
      tags: [tracking]
      responses:
        201: {description: The reverse correction, content: {application/json: {schema: {$ref: '#/components/schemas/Correction'}}}}
    """
    correction = get_or_404(StudyCorrection, correction_id, "correction", field="correction")
    reverse = undo(db(), correction, user=actor()[:64])
    db().commit()
    return jsonify({"correction": correction_json(reverse), "tasks": _tasks_of(reverse)}), 201


@bp.get("/orthanc-tasks/<int:task_id>")
@api_roles(*ADMIN)
def get_task(task_id: int):
    """A queued change to a study in Orthanc.

    ---
    get:
      tags: [tracking]
      responses:
        200: {description: The task, content: {application/json: {schema: {type: object}}}}
    """
    task = get_or_404(OrthancTask, task_id, "task", field="task")
    return jsonify(task_json(task))


@bp.post("/patients/<mrn>/merge")
@api_roles(*INTEGRATOR)
def post_merge(mrn: str):
    """Merge the patient named in the body (`merged_mrn`) into this one, the survivor.

    ---
    post:
      tags: [patients]
      requestBody:
        required: true
        content:
          application/json:
            schema: {type: object, required: [merged_mrn], properties: {merged_mrn: {type: string}}}
      responses:
        201: {description: Merged, content: {application/json: {schema: {$ref: '#/components/schemas/Correction'}}}}
    """
    body = v.json_body(request)
    survivor = find_patient(db(), mrn)
    merged = find_patient(db(), v.text(body, "merged_mrn", required=True, max_len=64))
    if survivor is None:
        raise ApiError(404, "no patient with this MRN", field="mrn")
    if merged is None:
        raise ApiError(400, "no patient with this MRN", field="merged_mrn")
    correction = merge_patients(db(), survivor, merged, user=actor()[:64])
    db().commit()
    return jsonify({"correction": correction_json(correction), "tasks": _tasks_of(correction)}), 201


@bp.get("/orders/<accession>/journey")
@api_roles(*INTEGRATOR)
def get_journey(accession: str):
    """An order's journey: every event from order to report.

    ---
    get:
      tags: [tracking]
      responses:
        200: {description: The journey, content: {application/json: {schema: {type: object}}}}
    """
    return jsonify(journey(db(), find_order(db(), accession)))


@bp.get("/studies")
@api_roles(*INTEGRATOR)
def get_studies():
    """Received studies, newest first.

    ---
    get:
      tags: [tracking]
      parameters:
        - {name: unmatched, in: query, required: false, schema: {type: string}}
        - {name: limit, in: query, required: false, schema: {type: integer}}
      responses:
        200: {description: Studies, content: {application/json: {schema: {$ref: '#/components/schemas/Items'}}}}
    """
    only_unmatched = request.args.get("unmatched") in ("1", "true")
    stmt = unmatched_studies() if only_unmatched else select(Study).where(Study.deleted_at.is_(None))
    try:
        limit = min(int(request.args.get("limit", 100)), 1000)
    except ValueError:
        raise ApiError(400, "must be an integer", field="limit") from None
    rows = db().scalars(stmt.order_by(Study.last_received_at.desc()).limit(limit))
    if only_unmatched:
        return jsonify({"items": [dict(study_json(s), candidates=candidates(db(), s)) for s in rows]})
    return jsonify({"items": [study_json(s) for s in rows]})


@bp.post("/internal/study-events")
@api_roles(*INTERNAL)
def post_study_event():
    """Called by the Orthanc plugin for each study change; idempotent.

    ---
    post:
      tags: [internal]
      requestBody:
        required: true
        content:
          application/json:
            schema: {type: object}
      responses:
        200: {description: Applied, content: {application/json: {schema: {$ref: '#/components/schemas/Ok'}}}}
    """
    ev = StudyEvent.from_json(request.get_json(silent=True))
    coerce = settings().coerce_on_stable and ev.change == "StableStudy"

    def apply(session):
        study = apply_study_event(session, ev)
        if coerce:
            coerce_if_needed(session, study)
        return bool(study and study.order_id)

    linked = write_with_retry(apply)
    return jsonify({"ok": True, "linked": linked})
