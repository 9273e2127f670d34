"""Second-opinion share links in the viewer part: /share/<token> asks for the code, then
starts a viewer session limited to the link's one study (its own session key, apart from
RIS logins), and the proxy lets that session read that study's DICOMweb and nothing
else (routes.share_query); without "with the signed report" the report's DICOM copies
are hidden as well (routes.ReportHiding). The link is looked up again on every request: a revocation
or the expiry ends access at once, with 410.

The rules of a link (expiry, code, lockout, audit) are in ris_app/reporting/sharing.py."""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from dataclasses import dataclass

from flask import Flask, Response, abort, redirect, render_template, request, session
from sqlalchemy.orm import Session, sessionmaker

from ris_app.audit.trail import record_read
from ris_app.db import transaction
from ris_app.errors import NotFound
from ris_app.model import ShareLink
from ris_app.reporting.sharing import (
    GONE_TEXT,
    find_link,
    open_with_code,
    report_copies,
    share_who,
    signed_version,
    state,
)
from ris_app.viewer.routes import ReportHiding

log = logging.getLogger(__name__)

SESSION_KEY = "share"  # {"id": link id, "uid": StudyInstanceUID, "since": epoch seconds}
FORM_CSRF = "share_csrf"
SESSION_MAX_AGE = 12 * 3600


@dataclass(frozen=True)
class ShareSession:
    link_id: int
    study_uid: str
    hiding: ReportHiding | None = None  # a link without the report: what the proxy hides


def _page(status: int, **context) -> Response:
    html = render_template("share_viewer.html", **context)
    return Response(html, status=status, mimetype="text/html", headers={"Cache-Control": "no-store"})


def gone_page(reason: str) -> Response:
    return _page(410, title="Link no longer valid", text=GONE_TEXT[reason])


def install_share(app: Flask, sessions: sessionmaker[Session], viewer_path) -> callable:
    """Add the share routes to the viewer app; return `current_share()`, which the proxy
    calls: the request's ShareSession, None without one, abort(410) when its link is gone."""

    def current_share() -> ShareSession | None:
        data = session.get(SESSION_KEY)
        if not isinstance(data, dict):
            return None
        if time.time() - data.get("since", 0) > SESSION_MAX_AGE:
            return None
        with sessions() as s:
            link = s.get(ShareLink, data.get("id"))
            if link is None or link.study.study_instance_uid != data.get("uid"):
                return None
            current = state(link)
            if current != "active":
                abort(gone_page(current))  # 410, the plain page: OHIF's own page loads get it too
            hiding = None if link.include_report else ReportHiding(*report_copies(s, link.study))
            return ShareSession(link.id, link.study.study_instance_uid, hiding)

    def landing(link: ShareLink) -> Response:
        return _page(
            200,
            title="Shared study",
            viewer_href=viewer_path(link.study.study_instance_uid),
            pdf=link.include_report,
            recipient=link.recipient,
        )

    @app.get("/share/<token>")
    def share_form(token: str):
        with sessions() as s:
            try:
                link = find_link(s, token)
            except NotFound:
                return _page(
                    404, title="Unknown link", text="This link does not exist. Check that it was copied whole."
                )
            current = state(link)
            if current != "active":
                return gone_page(current)
            held = session.get(SESSION_KEY)
            if isinstance(held, dict) and held.get("id") == link.id:  # opened before in this browser
                return landing(link)
        csrf = session.get(FORM_CSRF) or secrets.token_urlsafe(32)
        session[FORM_CSRF] = csrf
        return _page(200, title="Shared study", form=True, csrf=csrf)

    @app.post("/share/<token>")
    def share_open(token: str):
        expected, sent = session.get(FORM_CSRF, ""), request.form.get("csrf_token", "")
        if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
            log.warning("share code form refused: missing or wrong CSRF token")
            return _page(400, title="Form expired", text="Reload the link's page and type the code again.")
        try:
            with transaction(sessions) as s:
                opening = open_with_code(s, token, request.form.get("code", ""), request.remote_addr or "")
                link_id, uid = opening.link.id, opening.link.study.study_instance_uid
        except NotFound:
            return _page(404, title="Unknown link", text="This link does not exist. Check that it was copied whole.")
        if opening.refused == "wrong_code":
            left = opening.tries_left
            return _page(400, title="Shared study", form=True, csrf=expected, error=f"Wrong code: {left} tries left.")
        if opening.refused:
            return gone_page(opening.refused)
        session.clear()  # a staff login in this browser's viewer cookie ends: one study only
        session[SESSION_KEY] = {"id": link_id, "uid": uid, "since": int(time.time())}
        if opening.link.include_report:
            return landing(opening.link)
        return redirect(viewer_path(uid))

    @app.get("/share-report.pdf")
    def share_report():
        share = current_share()
        if share is None:
            abort(401)
        with sessions() as s:
            link = s.get(ShareLink, share.link_id)
            version = signed_version(s, link.study, with_pdf=True) if link.include_report else None
            if version is None:
                abort(404)
            pdf, number = version.pdf, version.version
            name = f"report-{link.study.accession_number or link.id}-v{number}.pdf"
            who, study = share_who(link, request.remote_addr or ""), link.study
        record_read(
            sessions,
            "report.read",
            who,
            resource=study.study_instance_uid,
            mrn=study.patient_mrn,
            accession=study.accession_number,
            detail=f"share link {share.link_id}: report PDF v{number}",
        )
        return Response(
            pdf,
            mimetype="application/pdf",
            headers={"Content-Disposition": f'inline; filename="{name}"', "Cache-Control": "no-store"},
        )

    return current_share
