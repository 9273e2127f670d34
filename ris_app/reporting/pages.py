"""Pages for radiologists: the reading worklist, the report page (template, draft,
preliminary, sign, addenda, critical results, priors), report PDFs, the hand-over
to the viewers (OHIF, Orthanc Explorer) behind the RIS login, and second-opinion share
links (created and revoked from the report page; opened in the viewer part)."""

from __future__ import annotations

from datetime import date, datetime

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, session, url_for
from sqlalchemy import select
from sqlalchemy.orm.exc import StaleDataError

from ris_app.clock import from_site, site_now
from ris_app.errors import DomainError, StaleVersion
from ris_app.model import (
    COMMUNICATION_METHODS,
    DRAFT,
    FINAL,
    PRELIMINARY,
    SECTIONS,
    Order,
    Report,
    ReportVersion,
    ShareLink,
    Study,
)
from ris_app.reporting.lifecycle import (
    current_version,
    record_critical_result,
    report_of,
    report_of_order,
    save_report,
    start_addendum,
    start_report,
    starting_text,
    study_procedure,
    template_for,
)
from ris_app.reporting.outbox import LABELS, retry_now, task_json, tasks_of
from ris_app.reporting.reading_list import UNREAD, ReadingFilters, priors_of, radiologists, reading_worklist
from ris_app.reporting.sharing import DEFAULT_DAYS, create_share, revoke, shares_of, signed_version
from ris_app.reporting.sharing import state as share_state
from ris_app.viewer.app import explorer_study_path, ohif_study_path, viewer_base_url, viewer_login_url
from ris_app.web import db, login_guard, settings
from ris_app.web.auth import check_csrf, current_user, login_required
from ris_app.web.live import live_page

bp = Blueprint("reading", __name__, url_prefix="/reading")
bp.before_request(check_csrf)  # every form here carries the session's token
READERS = ("radiologist",)  # admin may too (login_required lets admin through)


@bp.app_template_filter("image_modalities")
def image_modalities(modalities: str) -> str:
    """A study's modalities as a reader wants them: without DOC and SR, the documents
    (our stored reports among them) that travel with the images."""
    return ", ".join(m for m in (modalities or "").split("\\") if m and m not in ("DOC", "SR")) or "—"


@bp.app_template_global()
def report_for_order(order: Order) -> Report | None:
    """For the order page's report box (templates/report_summary.html)."""
    return report_of_order(db(), order)


def _date_arg(name: str) -> date | None:
    try:
        return date.fromisoformat(request.args[name]) if request.args.get(name) else None
    except ValueError:
        return None


@bp.get("")
@login_required(*READERS)
@live_page
def worklist():
    s = db()
    mine = request.args.get("radiologist", "")
    filters = ReadingFilters(
        modality=request.args.get("modality", "").strip()[:16],
        date_from=_date_arg("from"),
        date_to=_date_arg("to"),
        status=request.args.get("status", "") if request.args.get("status") in (UNREAD, DRAFT, PRELIMINARY) else "",
        radiologist_id=int(mine) if mine.isdigit() else None,
    )
    rows = reading_worklist(s, filters)
    return render_template(
        "reading_worklist.html",
        rows=rows,
        filters=filters,
        args=request.args,
        radiologists=radiologists(s),
        statuses=(UNREAD, DRAFT, PRELIMINARY),
    )


def _local_to_utc(value: str) -> datetime:
    """A time typed in the page (the site's wall-clock time) as stored: UTC."""
    return from_site(datetime.fromisoformat(value))


def _study(study_id: int) -> Study:
    study = db().get(Study, study_id)
    if study is None or study.deleted_at is not None:
        abort(404)
    return study


@bp.get("/studies/<int:study_id>")
@login_required()
def report_page(study_id: int):
    s = db()
    study = _study(study_id)
    report = report_of(s, study)
    template = None
    if report is None:
        try:
            template = template_for(s, study)
            s.commit()  # the built-in templates, seeded on first use
        except DomainError as err:
            flash(err.message, "error")
    code, procedure, modality = study_procedure(study)
    draft = None
    if report is not None:
        draft = current_version(report)
    elif template is not None:  # shown, not saved: the first save makes the report
        draft = {**starting_text(study, template), "status": None, "kind": "ORIGINAL"}
    return render_template(
        "reading_report.html",
        study=study,
        report=report,
        draft=draft,
        template=template,
        procedure=procedure,
        modality=modality,
        procedure_code=code,
        priors=priors_of(s, study),
        tasks={v.id: [task_json(t) for t in tasks_of(s, v)] for v in report.versions} if report else {},
        task_labels=LABELS,
        sections=SECTIONS,
        methods=COMMUNICATION_METHODS,
        FINAL=FINAL,
        can_write=current_user().role in (*READERS, "admin"),
        now=site_now().strftime("%Y-%m-%dT%H:%M"),
    )


@bp.post("/studies/<int:study_id>/report")
@login_required(*READERS)
def save(study_id: int):
    s = db()
    study = _study(study_id)
    user = current_user()
    action = request.form.get("action", "draft")
    try:
        report = start_report(s, study, user)
        fields = {k: request.form[k] for k in (*SECTIONS, "addendum") if k in request.form}
        sent = request.form.get("version", "")
        version = save_report(s, report, user, fields, action, expected_version=int(sent) if sent.isdigit() else None)
        s.commit()
    except StaleDataError:
        s.rollback()
        flash("Someone else saved or signed this report meanwhile: your text was not saved. Here is theirs.", "error")
        return redirect(url_for("reading.report_page", study_id=study_id))
    except StaleVersion as err:
        s.rollback()
        flash(f"Your text was not saved: {err.message}. Here is theirs.", "error")
        return redirect(url_for("reading.report_page", study_id=study_id))
    except DomainError as err:
        s.rollback()
        flash(f"{err.field}: {err.message}" if err.field else err.message, "error")
        return redirect(url_for("reading.report_page", study_id=study_id))
    if version.status == FINAL:
        flash(
            ("Report signed." if version.version == 1 else f"Addendum {version.version - 1} signed.")
            + " Its PDF, its copies in the PACS and the result message are on their way (below).",
            "ok",
        )
    else:
        flash(f"Saved as {version.status.lower()}.", "ok")
    return redirect(url_for("reading.report_page", study_id=study_id))


@bp.post("/studies/<int:study_id>/addendum")
@login_required(*READERS)
def addendum(study_id: int):
    s = db()
    report = report_of(s, _study(study_id))
    if report is None:
        abort(404)
    try:
        start_addendum(s, report, current_user())
        s.commit()
    except DomainError as err:
        s.rollback()
        flash(err.message, "error")
    return redirect(url_for("reading.report_page", study_id=study_id, _anchor="report-form"))


@bp.post("/studies/<int:study_id>/critical")
@login_required(*READERS)
def critical(study_id: int):
    s = db()
    study = _study(study_id)
    try:
        report = start_report(s, study, current_user())
        when = request.form.get("communicated_at", "")
        record_critical_result(
            s,
            report,
            current_user(),
            communicated_to=request.form.get("communicated_to", ""),
            method=request.form.get("method", ""),
            communicated_at=_local_to_utc(when) if when else None,
            note=request.form.get("note", ""),
        )
        s.commit()
        flash("Critical result recorded.", "ok")
    except ValueError:
        s.rollback()
        flash("communicated_at: not a date and time", "error")
    except DomainError as err:
        s.rollback()
        flash(f"{err.field}: {err.message}" if err.field else err.message, "error")
    return redirect(url_for("reading.report_page", study_id=study_id, _anchor="critical"))


@bp.get("/versions/<int:version_id>/report.pdf")
@login_required()
def pdf(version_id: int):
    version = db().get(ReportVersion, version_id)
    if version is None or version.pdf is None:
        abort(404)
    name = f"report-{version.report.study.accession_number or version.report_id}-v{version.version}.pdf"
    return Response(
        version.pdf, mimetype="application/pdf", headers={"Content-Disposition": f'inline; filename="{name}"'}
    )


@bp.post("/versions/<int:version_id>/publish")
@login_required(*READERS)
def republish(version_id: int):
    """Retry now: every task of the version not done is due again (the worker does it)."""
    version = db().get(ReportVersion, version_id)
    if version is None or version.status != FINAL:
        abort(404)
    due = retry_now(db(), version)
    db().commit()
    flash(f"{due} task(s) queued again." if due else "Nothing left to do.", "ok")
    return redirect(
        url_for("reading.report_page", study_id=version.report.study_id, _anchor=f"version-{version.version}")
    )


@bp.get("/studies/<int:study_id>/open/<viewer>")
@login_required("radiologist", "technologist")
def open_viewer(study_id: int, viewer: str):
    """Hand the logged-in user over to the viewer part, on this study."""
    study, cfg = _study(study_id), settings()
    if viewer not in ("ohif", "explorer"):
        abort(404)
    if viewer == "explorer" and current_user().role not in ("radiologist", "admin"):
        abort(403)
    if cfg.ohif_url:  # Docker: Orthanc's own OHIF plugin and Explorer, behind Orthanc's login
        if viewer == "ohif":
            return redirect(cfg.ohif_url + ohif_study_path(study.study_instance_uid))
        return redirect(cfg.orthanc_public_url + explorer_study_path(study.orthanc_id).removeprefix("/orthanc"))
    target = ohif_study_path(study.study_instance_uid) if viewer == "ohif" else explorer_study_path(study.orthanc_id)
    ris_session = login_guard.session_key(session["sid"])
    return redirect(viewer_login_url(cfg, request.host_url, current_user().id, target, ris_session))


@bp.get("/by-uid/<study_instance_uid>")
@login_required()
def by_uid(study_instance_uid: str):
    study = db().scalar(select(Study).where(Study.study_instance_uid == study_instance_uid))
    if study is None:
        abort(404)
    return redirect(url_for("reading.report_page", study_id=study.id))


# --------------------------------------------------------------- second-opinion share links
@bp.app_template_global()
def study_shares(study: Study) -> dict:
    """For the report page's "Second opinion" box (templates/_shares.html)."""
    s = db()
    return {
        "links": [(link, share_state(link)) for link in shares_of(s, study)],
        "can_share": current_user().role in (*READERS, "admin"),
        "signed": signed_version(s, study) is not None,
        "default_days": DEFAULT_DAYS,
        "max_days": settings().share_max_days,
    }


@bp.post("/studies/<int:study_id>/shares")
@login_required(*READERS)
def share(study_id: int):
    """Create a link: the page shows its address and code once (only hashes are kept)."""
    s, study, cfg = db(), _study(study_id), settings()
    days = request.form.get("days", str(DEFAULT_DAYS)).strip()
    try:
        link, token, code = create_share(
            s,
            study,
            current_user(),
            recipient=request.form.get("recipient", ""),
            days=int(days) if days.isdigit() else 0,
            include_report=request.form.get("include_report") == "1",
            max_days=cfg.share_max_days,
            address=request.remote_addr or "",
        )
        s.commit()
    except DomainError as err:
        s.rollback()
        flash(f"{err.field}: {err.message}" if err.field else err.message, "error")
        return redirect(url_for("reading.report_page", study_id=study_id, _anchor="shares"))
    html = render_template(
        "share_created.html",
        study=study,
        link=link,
        url=f"{viewer_base_url(cfg, request.host_url)}/share/{token}",
        code=code,
    )
    return Response(html, headers={"Cache-Control": "no-store"})


@bp.post("/shares/<int:link_id>/revoke")
@login_required(*READERS)
def revoke_share(link_id: int):
    s = db()
    link = s.get(ShareLink, link_id)
    if link is None:
        abort(404)
    revoke(s, link, current_user(), request.remote_addr or "")
    s.commit()
    flash(f"The link shared with {link.recipient} is revoked.", "ok")
    return redirect(url_for("reading.report_page", study_id=link.study_id, _anchor="shares"))
