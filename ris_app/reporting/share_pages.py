"""Second-opinion share links on the report page: the "Second opinion" box, creating a
link (its address and code shown once) and revoking it. Routes of the reading blueprint
(reporting/pages.py); the link is opened in the viewer part (viewer/share.py)."""

from __future__ import annotations

from flask import Response, abort, flash, redirect, render_template, request, url_for

from ris_app.errors import DomainError
from ris_app.model import ShareLink, Study
from ris_app.reporting.pages import READERS, _study, bp
from ris_app.reporting.sharing import DEFAULT_DAYS, create_share, revoke, shares_of, signed_version
from ris_app.reporting.sharing import state as share_state
from ris_app.viewer.app import viewer_base_url
from ris_app.web import db, settings
from ris_app.web.auth import current_user, login_required


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
