"""Pages of image tracking: the unmatched-studies inbox (link, undo), the sync status,
patient merge, and an order's journey."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from ris_app.errors import DomainError
from ris_app.model import Study, StudyCorrection
from ris_app.ops.parts import Facts, parts_health
from ris_app.scheduling.orders import find_order, find_patient
from ris_app.tracking import correction_view
from ris_app.tracking import state as sync_state
from ris_app.tracking.api import orthanc_last_change
from ris_app.tracking.corrections import link_study, merge_patients, undo
from ris_app.tracking.inbox import candidates, unmatched_studies
from ris_app.tracking.journey import journey
from ris_app.web import db, get_or_404, settings
from ris_app.web.access import ORDER_READERS
from ris_app.web.auth import check_csrf, current_user, login_required
from ris_app.web.errors import ApiError

bp = Blueprint("tracking", __name__)
bp.before_request(check_csrf)
# the inbox's corrections, readable: labelled fields, old -> new (tracking/correction_view.py)
bp.add_app_template_global(correction_view.changes, "correction_changes")
bp.add_app_template_global(correction_view.action_text, "correction_action")


def _user() -> str:
    user = current_user()
    return user.username if user else "page"


@bp.get("/inbox")
@login_required("technologist")
def inbox():
    studies = db().scalars(unmatched_studies().order_by(Study.last_received_at.desc()).limit(100)).all()
    rows = [(s, candidates(db(), s)) for s in studies]
    recent = db().scalars(select(StudyCorrection).order_by(StudyCorrection.id.desc()).limit(20)).all()
    return render_template("inbox.html", rows=rows, recent=recent)


@bp.post("/inbox/link")
@login_required("technologist")
def inbox_link():
    try:
        study = db().scalar(select(Study).where(Study.study_instance_uid == request.form.get("study_instance_uid", "")))
        if study is None:
            raise ApiError(404, "no such study")
        order = find_order(db(), request.form.get("accession_number", ""))
        link_study(db(), study, order, user=_user())
        db().commit()
        flash(f"Study linked to order {order.accession_number}; Orthanc is being corrected.", "ok")
    except DomainError as err:
        db().rollback()
        flash(err.message, "error")
    return redirect(url_for("tracking.inbox"))


@bp.post("/corrections/<int:correction_id>/undo")
@login_required("technologist")
def correction_undo(correction_id: int):
    try:
        correction = get_or_404(StudyCorrection, correction_id, "correction", field="correction")
        undo(db(), correction, user=_user())
        db().commit()
        flash("Link undone; Orthanc is being restored.", "ok")
    except DomainError as err:
        db().rollback()
        flash(err.message, "error")
    return redirect(url_for("tracking.inbox"))


@bp.get("/sync")
@login_required("technologist")
def sync_page():
    session, last_change = db(), orthanc_last_change()
    summary = sync_state.summary(session, last_change)
    facts = Facts(
        orthanc="ok" if last_change is not None else "unreachable",
        sync=summary,
        sync_at=sync_state.get(session, sync_state.FEED)[1],
        reconcile_at=sync_state.get(session, sync_state.RECONCILE)[1],
        reconcile_seconds=settings().reconcile_seconds,
    )
    reconcile = summary["reconcile"] or {}
    return render_template("sync.html", s=summary, parts=parts_health(session, facts), reconcile=reconcile)


@bp.route("/patients/merge", methods=["GET", "POST"])
@login_required("admin")
def merge_page():
    if request.method == "POST":
        try:
            survivor = find_patient(db(), request.form.get("survivor_mrn", "").strip())
            merged = find_patient(db(), request.form.get("merged_mrn", "").strip())
            if survivor is None or merged is None:
                raise ApiError(400, "both MRNs must name registered patients")
            merge_patients(db(), survivor, merged, user=_user())
            db().commit()
            flash(f"Patient {merged.mrn} merged into {survivor.mrn}.", "ok")
            return redirect(url_for("tracking.merge_page"))
        except DomainError as err:
            db().rollback()
            flash(err.message, "error")
            return render_template("merge.html", form=request.form), 400
    return render_template("merge.html", form=request.form)


@bp.get("/orders/<accession>/journey")
@login_required(*ORDER_READERS)
def journey_page(accession: str):
    try:
        order = find_order(db(), accession)
    except DomainError:
        return render_template("not_found.html", what=f"order {accession}"), 404
    return render_template("journey.html", j=journey(db(), order), order=order)
