"""The audit trail of the web layer (pages and API): which route is which audited action,
and the hooks that write its event.

One table, `EVENTS`, keyed by (endpoint, method). A GET in it is a read: its event is
written after the response is built, in a transaction of its own (audit.trail.record_read;
if it cannot be written the response is not sent). Any other method is a write: its event
is added by a `before_commit` hook to the request's own transaction, so the event and the
change commit together or not at all, whichever way the view commits. A write that
committed nothing is recorded as failed when the page flashed an error or the API answered
4xx/5xx; an idempotent repeat that changed nothing is not recorded. Every 401/403 answer is
a refusal (the route's action when it is in the table, else access.refused). Logins and
logouts are recorded by web/auth.py with `note`.

The MRN and accession come from the route's arguments (`_SUBJECT_ARGS`), else from the
rows the transaction wrote (audit.subject.touched).

Why this long: EVENTS is one table of every audited route (one line each, about half the
module); splitting it by package would scatter the one place an auditor reads."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from flask import Flask, Response, current_app, g, has_request_context, request
from flask import session as cookie
from sqlalchemy import event
from sqlalchemy.orm import Session

from ris_app.audit import subject
from ris_app.audit.trail import Who, record, record_read
from ris_app.model import (
    ApiToken,
    CriticalResult,
    LoginFailure,
    Order,
    Report,
    ReportVersion,
    Study,
    StudyCorrection,
    UserSession,
)
from ris_app.model.audit import FAILED, REFUSED, SUCCESS
from ris_app.web import db
from ris_app.web.access import INTERNAL

log = logging.getLogger(__name__)


def _header_ae(name: str) -> Callable[[], str]:
    return lambda: request.headers.get(name, "").strip()[:16]


def _study_event_ae() -> str:
    body = request.get_json(silent=True)
    study = body.get("study") if isinstance(body, dict) else None
    aet = study.get("RemoteAET", "") if isinstance(study, dict) else ""
    return aet.strip()[:16] if isinstance(aet, str) else ""


def _study_event_action() -> str:
    body = request.get_json(silent=True)
    return "study.delete" if isinstance(body, dict) and body.get("change") == "Deleted" else "images.receive"


def _merged_mrn() -> str:
    body = request.get_json(silent=True) if request.is_json else request.form.to_dict()
    merged = body.get("merged_mrn") if isinstance(body, dict) else None
    return f"merged MRN {merged.strip()[:64]} into this one" if isinstance(merged, str) and merged.strip() else ""


def _setup_subject() -> str:
    """Which station or procedure a setup change is about (no patient is)."""
    args = request.view_args or {}
    if "aet" in args:
        return f"station {args['aet']}"[:80]
    body = request.get_json(silent=True) if request.is_json else request.form
    code = args.get("code") or (body.get("code") if hasattr(body, "get") else None)
    return f"procedure {code}"[:80] if isinstance(code, str) and code else ""


def _new_station() -> str:
    body = request.get_json(silent=True) if request.is_json else request.form
    aet = body.get("aet") if hasattr(body, "get") else None
    return f"station {aet.strip()}"[:80] if isinstance(aet, str) and aet.strip() else ""


_REPORT_ACTIONS = {"sign": "report.sign", "preliminary": "report.preliminary"}


def _user_detail() -> str:
    from ris_app.web.users import username_of_route

    return username_of_route()


def _report_action() -> str:
    return _REPORT_ACTIONS.get(request.form.get("action", ""), "report.save")


def _cancel_detail() -> str:
    """The listed reason of a cancel (its free text may name people: not in the trail)."""
    from ris_app.scheduling.edit import CANCEL_REASONS

    return f"cancel: {CANCEL_REASONS.get(request.form.get('reason', ''), 'no reason given')}"


def _charge_action() -> str:
    """charge.review, charge.send or charge.correct: the route's action."""
    return f"charge.{(request.view_args or {}).get('action', 'change')}"


@dataclass(frozen=True)
class Audited:
    """How one route is audited. `action`: the action, or a function of the request that
    names it. `handed_over`: the work commits in a transaction of its own (the HL7
    processor, reconciliation), so a 2xx/3xx answer is the success. `ae`: for calls the
    Orthanc plugin relays, the DICOM AE it relays for (recorded instead of the token).
    `subject_only`: record only when the request names a patient or order. `detail`: a
    note from the request (identifiers only, never names)."""

    action: str | Callable[[], str]
    handed_over: bool = False
    ae: Callable[[], str] | None = None
    subject_only: bool = False
    detail: Callable[[], str] | None = None

    def name(self) -> str:
        return self.action if isinstance(self.action, str) else self.action()


# (endpoint, method) -> how it is audited. GET: a read; anything else: a write.
EVENTS: dict[tuple[str, str], Audited] = {
    # pages: reads
    ("pages.today", "GET"): Audited("worklist.read"),
    ("pages.order_detail", "GET"): Audited("order.read"),
    ("pages.new_order", "GET"): Audited("patient.read", subject_only=True),  # ?mrn=: the patient's form
    ("pages.studies", "GET"): Audited("study.list"),
    ("tracking.inbox", "GET"): Audited("study.list"),
    ("tracking.journey_page", "GET"): Audited("order.read"),
    ("reading.worklist", "GET"): Audited("worklist.read"),
    ("reading.report_page", "GET"): Audited("report.read"),
    ("reading.pdf", "GET"): Audited("report.read"),
    ("hl7_pages.messages_page", "GET"): Audited("hl7.read"),
    ("hl7_pages.message_page", "GET"): Audited("hl7.read"),
    ("worklist_admin.worklist_queries_page", "GET"): Audited("worklist.read"),
    ("worklist_admin.worklist_query_page", "GET"): Audited("worklist.read"),
    # pages: writes
    ("pages.new_patient", "POST"): Audited("patient.create"),
    ("pages.new_order", "POST"): Audited("order.create"),
    ("pages.order_status", "POST"): Audited("step.move"),
    ("order_pages.edit_page", "GET"): Audited("order.read"),
    ("order_pages.edit_page", "POST"): Audited("order.update"),
    ("order_pages.cancel_page", "GET"): Audited("order.read"),
    ("order_pages.cancel_page", "POST"): Audited("step.move", detail=_cancel_detail),
    ("registration_pages.safety_override", "POST"): Audited("safety.override"),
    ("registration_pages.patient_record", "GET"): Audited("patient.read"),
    ("registration_pages.patient_record_save", "POST"): Audited("patient.update"),
    # finding a patient (a list of patients: read), the patient page and its edit form
    ("patients.patients_page", "GET"): Audited("patient.read"),
    ("patients.lookup", "GET"): Audited("patient.read"),
    ("patients.patient_page", "GET"): Audited("patient.read"),
    ("patients.patient_save", "POST"): Audited("patient.update"),
    ("tracking.inbox_link", "POST"): Audited("study.link"),
    ("tracking.correction_undo", "POST"): Audited("correction.undo"),
    ("tracking.merge_page", "POST"): Audited("patient.merge", detail=_merged_mrn),
    ("reading.save", "POST"): Audited(_report_action),
    ("reading.addendum", "POST"): Audited("report.addendum"),
    ("reading.critical", "POST"): Audited("report.critical"),
    ("reading.republish", "POST"): Audited("report.publish"),
    ("hl7_pages.reprocess_page", "POST"): Audited("hl7.reprocess", handed_over=True),
    ("users.create_user_page", "POST"): Audited("user.create", detail=_user_detail),
    ("users.update_user_page", "POST"): Audited("user.update", detail=_user_detail),
    # the patient, through a message's confirm or cancel link (no login: the token)
    ("appointment.appointment", "POST"): Audited("step.move"),
    # the front desk's calendar (ris_app/frontdesk/pages.py)
    ("calendar.day_page", "GET"): Audited("worklist.read"),
    ("calendar.week_page", "GET"): Audited("worklist.read"),
    ("calendar.waiting_page", "GET"): Audited("worklist.read"),
    ("calendar.reschedule_page", "GET"): Audited("order.read"),
    ("calendar.reschedule_page", "POST"): Audited("step.reschedule"),
    # front desk: booking clashes (a list of patients), resolved by moving or keeping; setup (admins)
    ("clashes.clashes_page", "GET"): Audited("worklist.read"),
    ("clashes.reschedule", "POST"): Audited("step.reschedule"),
    ("clashes.keep", "POST"): Audited("booking.keep"),
    ("setup.stations", "POST"): Audited("station.create", detail=_new_station),
    ("api.post_station", "POST"): Audited("station.create", detail=_new_station),
    ("setup.station", "POST"): Audited("station.update", detail=_setup_subject),
    ("setup.hours", "POST"): Audited("station.update", detail=_setup_subject),
    ("setup.add_block", "POST"): Audited("station.update", detail=_setup_subject),
    ("setup.delete_block", "POST"): Audited("station.update", detail=_setup_subject),
    ("setup.procedures", "POST"): Audited("station.update", detail=_setup_subject),
    ("setup.catalog", "POST"): Audited("catalog.create", detail=_setup_subject),
    ("setup.procedure", "POST"): Audited("catalog.update", detail=_setup_subject),
    ("frontdesk_api.put_hours", "PUT"): Audited("station.update", detail=_setup_subject),
    ("frontdesk_api.post_block", "POST"): Audited("station.update", detail=_setup_subject),
    ("frontdesk_api.delete_block", "DELETE"): Audited("station.update", detail=_setup_subject),
    ("frontdesk_api.put_station_procedures", "PUT"): Audited("station.update", detail=_setup_subject),
    ("frontdesk_api.patch_procedure_code", "PATCH"): Audited("catalog.update", detail=_setup_subject),
    ("api.post_procedure_code", "POST"): Audited("catalog.create", detail=_setup_subject),
    ("frontdesk_api.post_reschedule", "POST"): Audited("step.reschedule"),
    ("frontdesk_api.patch_order", "PATCH"): Audited("order.update"),
    # API: reads
    ("api.get_patient", "GET"): Audited("patient.read"),
    ("api.get_order", "GET"): Audited("order.read"),
    ("registration_api.get_patients_by_identifier", "GET"): Audited("patient.read"),
    ("registration_api.get_patients", "GET"): Audited("patient.read"),
    ("tracking_api.get_journey", "GET"): Audited("order.read"),
    ("tracking_api.get_studies", "GET"): Audited("study.list"),
    ("tracking_api.get_corrections", "GET"): Audited("correction.read"),
    ("report_api.study_report", "GET"): Audited("report.read"),
    ("report_api.order_report", "GET"): Audited("report.read"),
    ("report_api.version_pdf", "GET"): Audited("report.read"),
    ("worklist_admin.get_worklist", "GET"): Audited("worklist.read"),
    ("worklist_admin.get_worklist_queries", "GET"): Audited("worklist.read"),
    ("worklist_admin.get_worklist_query_explain", "GET"): Audited("worklist.read"),
    ("hl7_api.get_messages", "GET"): Audited("hl7.read"),
    ("hl7_api.get_message", "GET"): Audited("hl7.read"),
    ("hl7_api.get_outbox", "GET"): Audited("hl7.read"),
    # API: writes
    ("api.post_patient", "POST"): Audited("patient.create"),
    ("api.patch_patient", "PATCH"): Audited("patient.update"),
    ("tracking_api.post_merge", "POST"): Audited("patient.merge", detail=_merged_mrn),
    ("api.post_order", "POST"): Audited("order.create"),
    ("api.post_order_status", "POST"): Audited("step.move"),
    ("tracking_api.post_link", "POST"): Audited("study.link"),
    ("tracking_api.post_undo", "POST"): Audited("correction.undo"),
    ("tracking_api.post_reconcile", "POST"): Audited("sync.reconcile", handed_over=True),
    ("worklist_admin.post_worklist_items", "POST"): Audited("worklist.import"),
    ("hl7_api.post_reprocess", "POST"): Audited("hl7.reprocess", handed_over=True),
    ("hl7_api.post_outbox_retry", "POST"): Audited("hl7.retry"),
    ("hl7_api.post_outbox_discard", "POST"): Audited("hl7.discard"),
    ("analytics.adopt_duration", "POST"): Audited("catalog.update"),
    # the Orthanc plugin, relaying DICOM: the AE is the actor
    ("worklist_admin.post_worklist_find", "POST"): Audited("worklist.query", ae=_header_ae("X-Calling-AET")),
    ("tracking_api.post_study_event", "POST"): Audited(_study_event_action, ae=_study_event_ae),
    # billing (ris_app/billing): the charges name patients, orders and insurance
    ("billing.billing_page", "GET"): Audited("charge.read"),
    ("billing.export_csv", "GET"): Audited("export.csv"),
    ("billing.charge_action", "POST"): Audited(_charge_action),
    ("billing.bulk_action", "POST"): Audited(_charge_action),
    ("billing.capture_step", "POST"): Audited("charge.capture"),
    ("billing_api.get_charges", "GET"): Audited("charge.read"),
    ("billing_api.post_charge_action", "POST"): Audited(_charge_action),
    ("billing_api.post_charge_correct", "POST"): Audited("charge.correct"),
    ("billing_api.post_billing_item", "POST"): Audited("price.change"),
    ("billing_api.post_billing_price", "POST"): Audited("price.change"),
}

# Route arguments that name a patient or order, and how to find its (MRN, accession).
_SUBJECT_ARGS: dict[str, Callable[[Session, object], subject.Subject]] = {
    "mrn": lambda s, v: (str(v), ""),
    "accession": lambda s, v: subject.by_id(s, Order, v, "accession_number"),
    "suid": lambda s, v: subject.by_id(s, Study, v, "study_instance_uid"),
    "study_instance_uid": lambda s, v: subject.by_id(s, Study, v, "study_instance_uid"),
    "study_id": lambda s, v: subject.by_id(s, Study, v),
    "version_id": lambda s, v: subject.by_id(s, ReportVersion, v),
    "report_id": lambda s, v: subject.by_id(s, Report, v),
    "correction_id": lambda s, v: subject.by_id(s, StudyCorrection, v),
    "critical_id": lambda s, v: subject.by_id(s, CriticalResult, v),
}
# Query and form fields that name the patient or order, as the route argument they match.
_SUBJECT_FIELDS = {"mrn": "mrn", "survivor_mrn": "mrn", "accession_number": "accession", "accession": "accession"}
# Rows a request writes that are no patient data: the login and token bookkeeping.
_BOOKKEEPING = (UserSession, LoginFailure, ApiToken)
_DONE, _PENDING = "audit_done", "audit_pending"


def entry() -> Audited | None:
    """The table's entry for the current request (None: not audited)."""
    return EVENTS.get((request.endpoint or "", request.method))


def who(audited: Audited | None = None) -> Who:
    """Who the request acts for: the page user, the API token, or the AE the plugin relays."""
    address = (request.remote_addr or "")[:64]
    user, caller = g.get("user"), g.get("caller")
    # The AE a header names is taken only from a caller allowed to relay (the plugin):
    # anyone else could name any AE.
    relays = caller is not None and caller.role in INTERNAL
    aet = audited.ae() if relays and audited is not None and audited.ae is not None else ""
    if aet:
        return Who(aet, "ae", address)
    if user is not None:
        return Who(user.username, "user", address)
    if caller is not None:
        return Who(caller.name, "token", address)
    if request.headers.get("Authorization"):
        return Who("(unknown token)", "token", address)
    return Who("(anonymous)", "user", address)


def _subject(s: Session) -> subject.Subject:
    """MRN and accession the request names: its route arguments, its query or form fields
    (_SUBJECT_FIELDS), else what it wrote."""
    named = dict(request.view_args or {})
    for field, arg in _SUBJECT_FIELDS.items():
        value = request.values.get(field, "").strip()[:64]
        if value and arg not in named:
            named[arg] = value
    found = subject.NOBODY
    for name, value in named.items():
        if name in _SUBJECT_ARGS:
            found = _merge(found, _SUBJECT_ARGS[name](s, value))
    return _merge(found, subject.touched(s)) if request.method != "GET" else found


def _merge(a: subject.Subject, b: subject.Subject) -> subject.Subject:
    return (a[0] or b[0], a[1] or b[1])


def _detail(audited: Audited | None) -> str:
    caller = g.get("caller")
    if audited is not None and audited.ae is not None and caller is not None and caller.role in INTERNAL:
        return f"relayed by token {caller.name}"
    return audited.detail() if audited is not None and audited.detail is not None else ""


def _route() -> str:
    return request.url_rule.rule if request.url_rule is not None else request.path[:255]


def note(s: Session, action: str, actor: Who, *, outcome: str = SUCCESS, detail: str = "") -> None:
    """Record an event the table cannot describe (logins, logouts) in the request's
    transaction; the caller commits it. The request then records nothing more."""
    record(s, action, actor, outcome=outcome, resource=_route(), detail=detail)
    s.info[_PENDING] = True


# ------------------------------------------------------------------ hooks
def _before_commit(s: Session) -> None:
    if not has_request_context() or g.get("db") is not s or s.info.get(_PENDING) or g.get(_DONE):
        return
    audited = entry()
    if audited is None or request.method == "GET" or not subject.changed(s, _BOOKKEEPING):
        return
    mrn, accession = _subject(s)
    record(
        s,
        audited.name(),
        who(audited),
        resource=_route(),
        mrn=mrn,
        accession=accession,
        detail=_detail(audited),
    )
    s.info[_PENDING] = True


def _after_commit(s: Session) -> None:
    if s.info.pop(_PENDING, False) and has_request_context():
        g.setdefault(_DONE, True)


def _after_rollback(s: Session, _previous=None) -> None:
    s.info.pop(_PENDING, None)


def _flashed_error() -> bool:
    return any(category == "error" for category, _ in cookie.get("_flashes", []))


def _outcome(audited: Audited | None, status: int) -> str | None:
    """The outcome of a request no commit recorded; None: nothing to record."""
    if status in (401, 403):
        return REFUSED
    if audited is None or status == 304:  # 304: a live page's refresh that sent nothing (web/live.py)
        return None
    if status >= 400:
        return FAILED
    if request.method == "GET" or audited.handed_over:
        return SUCCESS
    return FAILED if _flashed_error() else None  # a write that changed nothing


def _after_request(response: Response) -> Response:
    if g.get(_DONE) or request.endpoint is None:
        return response
    audited = entry()
    outcome = _outcome(audited, response.status_code)
    if outcome is None:
        return response
    s = db()
    found = _subject(s)
    if audited is not None and audited.subject_only and found == subject.NOBODY:
        return response
    s.rollback()  # end the request's transaction: a writer's lock would block the event's
    g.setdefault(_DONE, True)
    record_read(
        current_app.extensions["ris_sessions"],
        audited.name() if audited is not None else "access.refused",
        who(audited),
        outcome=outcome,
        resource=_route(),
        mrn=found[0],
        accession=found[1],
        detail=_detail(audited) if outcome != REFUSED else f"HTTP {response.status_code}",
    )
    return response


def install(app: Flask) -> None:
    """Hook the trail into `app`: its sessions record writes, its responses record reads."""
    sessions = app.extensions["ris_sessions"]
    subject.watch(sessions)
    event.listen(sessions, "before_commit", _before_commit)
    event.listen(sessions, "after_commit", _after_commit)
    event.listen(sessions, "after_soft_rollback", _after_rollback)
    app.after_request(_after_request)
