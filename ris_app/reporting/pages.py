"""Pages for radiologists: the reading worklist, the report page (template, draft,
preliminary, sign, addenda, critical results, priors), report PDFs, the hand-over
to the viewers (OHIF, Orthanc Explorer) behind the RIS login. The second-opinion share
links' routes are on the same blueprint, in reporting/share_pages.py."""

from __future__ import annotations

from datetime import datetime

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
    Study,
)
from ris_app.reporting.flags import FLAGS, check_acknowledged, flags_of
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
from ris_app.reporting.reading_list import (
    UNREAD,
    ReadingFilters,
    next_unread,
    priors_of,
    radiologists,
    reading_worklist,
)
from ris_app.viewer.app import explorer_study_path, ohif_study_path, viewer_login_url
from ris_app.viewer.routes import EXPLORER_ROLES, VIEWER_ROLES
from ris_app.web import db, login_guard, settings
from ris_app.web.access import ORDER_READERS
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


bp.add_app_template_global(flags_of, "reading_flags")


@bp.app_template_global()
def report_for_order(order: Order) -> Report | None:
    """For the order page's report box (templates/report_summary.html)."""
    return report_of_order(db(), order)


@bp.get("")
@login_required(*READERS)
@live_page
def worklist():
    s = db()
    filters = ReadingFilters.from_args(request.args)
    rows = reading_worklist(s, filters)
    return render_template(
        "reading_worklist.html",
        rows=rows,
        filters=filters,
        filter_args=filters.as_args(),
        args=request.args,
        radiologists=radiologists(s),
        statuses=(UNREAD, DRAFT, PRELIMINARY),
        signed_note=_signed_note(request.args.get("signed", "")),
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
@login_required(*ORDER_READERS)
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
        flags=flags_of(study),
        filter_args=ReadingFilters.from_args(request.args).as_args(),
        signed_note=_signed_note(request.args.get("signed", "")),
    )


def _signed_note(study_id: str) -> dict | None:
    """What "Sign and next" just signed, for the note on the page it lands on (the id
    comes in the address, so no patient data travels in the session cookie)."""
    study = db().get(Study, int(study_id)) if study_id.isdigit() else None
    report = report_of(db(), study) if study is not None else None
    if report is None or report.status != FINAL:
        return None
    return {"study": study, "procedure": study_procedure(study)[1]}


def _confirm_page(study: Study, fields: dict[str, str], action: str):
    """The signing step without JavaScript (with it, the report page's dialog shows the
    same): who and what is about to be signed, the study's warnings, the text carried
    along in hidden fields so nothing typed is lost."""
    return render_template(
        "reading_confirm.html",
        study=study,
        procedure=study_procedure(study)[1],
        flags=flags_of(study),
        fields=fields,
        version=request.form.get("version", ""),
        action=action,
        filter_args=ReadingFilters.from_args(request.args).as_args(),
    )


@bp.post("/studies/<int:study_id>/report")
@login_required(*READERS)
def save(study_id: int):
    """Save or sign. A signature is final, so it takes two steps: "Sign" shows who and
    what is signed (the report page's dialog, or the confirm page without JavaScript) and
    only the confirmed form (confirmed=1, each flag's acknowledgement) signs. "Sign and
    next" then opens the next unread study of the worklist the reader came from."""
    s = db()
    study = _study(study_id)
    user = current_user()
    requested = request.form.get("action", "draft")
    action = "sign" if requested == "sign_next" else requested
    fields = {k: request.form[k] for k in (*SECTIONS, "addendum") if k in request.form}
    filter_args = ReadingFilters.from_args(request.args).as_args()
    here = url_for("reading.report_page", study_id=study_id, **filter_args)
    if action == "sign" and request.form.get("confirmed") != "1":
        return _confirm_page(study, fields, requested)
    try:
        if action == "sign":
            check_acknowledged(study, [f.code for f in FLAGS if request.form.get(f"ack_{f.code}") == "1"])
        report = start_report(s, study, user)
        sent = request.form.get("version", "")
        version = save_report(s, report, user, fields, action, expected_version=int(sent) if sent.isdigit() else None)
        s.commit()
    except StaleDataError:
        s.rollback()
        flash("Someone else saved or signed this report meanwhile: your text was not saved. Here is theirs.", "error")
        return redirect(here)
    except StaleVersion as err:
        s.rollback()
        flash(f"Your text was not saved: {err.message}. Here is theirs.", "error")
        return redirect(here)
    except DomainError as err:
        s.rollback()
        flash(f"{err.field}: {err.message}" if err.field else err.message, "error")
        if (err.field or "").startswith("ack_"):  # back to the signing step, the text kept
            return _confirm_page(study, fields, requested)
        return redirect(here)
    if version.status != FINAL:
        flash(f"Saved as {version.status.lower()}.", "ok")
        return redirect(here)
    if requested == "sign_next":
        nxt = next_unread(s, ReadingFilters.from_args(request.args), besides=study_id)
        if nxt is None:
            return redirect(url_for("reading.worklist", signed=study_id, **filter_args))
        return redirect(url_for("reading.report_page", study_id=nxt.id, signed=study_id, **filter_args))
    flash(
        ("Report signed." if version.version == 1 else f"Addendum {version.version - 1} signed.")
        + " Its PDF, its copies in the PACS and the result message are on their way (below).",
        "ok",
    )
    return redirect(here)


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
@login_required(*ORDER_READERS)
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


# The viewers a study opens in, and who may use each: the viewer part's own role sets
# (viewer/routes.py), so a link is shown exactly when the viewer would let its user in.
# OHIF is read-only for everyone (its proxy forwards DICOMweb reads only); Explorer reads
# everything in Orthanc, so it is for fewer roles.
VIEWERS: dict[str, tuple[str, frozenset[str]]] = {
    "ohif": ("Open in OHIF", VIEWER_ROLES),
    "explorer": ("Orthanc Explorer", EXPLORER_ROLES),
}


@bp.app_template_global()
def viewer_links(study: Study) -> list[dict[str, str]]:
    """The viewer links of `study` the logged-in user may follow (every page's viewer
    links come from here and go through open_viewer, never straight to Orthanc)."""
    user = current_user()
    role = user.role if user is not None else None
    return [
        {"viewer": name, "label": label, "href": url_for("reading.open_viewer", study_id=study.id, viewer=name)}
        for name, (label, roles) in VIEWERS.items()
        if role in roles
    ]


@bp.get("/studies/<int:study_id>/open/<viewer>")
@login_required("radiologist", "technologist")
def open_viewer(study_id: int, viewer: str):
    """Hand the logged-in user over to the viewer part, on this study."""
    study, cfg = _study(study_id), settings()
    if viewer not in VIEWERS:
        abort(404)
    if current_user().role not in VIEWERS[viewer][1]:
        abort(403)
    if cfg.ohif_url:  # Docker: Orthanc's own OHIF plugin and Explorer, behind Orthanc's login
        if viewer == "ohif":
            return redirect(cfg.ohif_url + ohif_study_path(study.study_instance_uid))
        return redirect(cfg.orthanc_public_url + explorer_study_path(study.orthanc_id).removeprefix("/orthanc"))
    target = ohif_study_path(study.study_instance_uid) if viewer == "ohif" else explorer_study_path(study.orthanc_id)
    ris_session = login_guard.session_key(session["sid"])
    return redirect(viewer_login_url(cfg, request.host_url, current_user().id, target, ris_session))


@bp.get("/by-uid/<study_instance_uid>")
@login_required(*ORDER_READERS)
def by_uid(study_instance_uid: str):
    study = db().scalar(select(Study).where(Study.study_instance_uid == study_instance_uid))
    if study is None:
        abort(404)
    return redirect(url_for("reading.report_page", study_id=study.id))


# The second-opinion share links' routes live in their own module, on this blueprint.
from ris_app.reporting import share_pages  # noqa: E402, F401  (registers them)
