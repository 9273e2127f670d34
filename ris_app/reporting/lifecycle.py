"""The report lifecycle: start from a template, save as DRAFT or PRELIMINARY, sign FINAL,
add addenda after FINAL, record critical results; and the reading worklist and priors.

Every function works inside the caller's transaction and takes no Flask objects, so the
pages, the API and tests share it. Signing queues what the signature causes (PDF, the
instances into Orthanc, the ORU) in the same transaction (ris_app/reporting/outbox.py). A FINAL version is never changed here: the only way to
correct a signed report is `start_addendum`.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ris_app.clock import to_site, utcnow
from ris_app.db import lock_row
from ris_app.errors import Conflict, Invalid, NotFound, StaleVersion
from ris_app.model import (
    ADDENDUM,
    COMMUNICATION_METHODS,
    DRAFT,
    FINAL,
    ORIGINAL,
    PRELIMINARY,
    SECTIONS,
    CriticalResult,
    Order,
    Report,
    ReportTemplate,
    ReportVersion,
    Study,
    User,
)
from ris_app.reporting.outbox import queue_publication

log = logging.getLogger(__name__)

# Built-in templates a new site starts from: (procedure code or "", modality or "", name,
# technique, findings, impression). The procedure's own row wins over its modality's,
# which wins over the generic one (both empty).
DEFAULT_TEMPLATES: tuple[tuple[str, str, str, str, str, str], ...] = (
    ("", "", "Generic", "", "", ""),
    (
        "CTHEAD",
        "CT",
        "CT head without contrast",
        "Axial CT images of the head were obtained without intravenous contrast.",
        "Brain parenchyma: \nVentricles and extra-axial spaces: \nHaemorrhage: \nCalvarium and skull base: ",
        "",
    ),
    (
        "CTCHEST",
        "CT",
        "CT chest with contrast",
        "Axial CT images of the chest were obtained after intravenous contrast.",
        "Lungs and airways: \nPleura: \nMediastinum and hila: \nHeart and great vessels: \nBones: ",
        "",
    ),
    (
        "CTABD",
        "CT",
        "CT abdomen and pelvis",
        "Axial CT images of the abdomen and pelvis were obtained.",
        "Liver: \nGallbladder and bile ducts: \nPancreas: \nSpleen: \nKidneys: \nBowel: \nPelvis: ",
        "",
    ),
    ("", "CT", "CT", "Axial CT images were obtained.", "", ""),
    (
        "MRBRAIN",
        "MR",
        "MR brain",
        "Multiplanar multisequence MR images of the brain.",
        "Brain parenchyma: \nDiffusion: \nVentricles: \nVessels (flow voids): ",
        "",
    ),
    ("", "MR", "MR", "Multiplanar multisequence MR images.", "", ""),
    (
        "XRCHEST",
        "CR",
        "XR chest 2 views",
        "PA and lateral radiographs of the chest.",
        "Lungs: \nHeart and mediastinum: \nPleura: \nBones: ",
        "",
    ),
    (
        "USABD",
        "US",
        "US abdomen",
        "Real-time ultrasound of the abdomen.",
        "Liver: \nGallbladder: \nKidneys: \nSpleen: \nAorta: ",
        "",
    ),
    (
        "MGSCREEN",
        "MG",
        "Screening mammography",
        "Bilateral CC and MLO views.",
        "Breast composition: \nMasses, calcifications, asymmetries: ",
        "BI-RADS: ",
    ),
)


# --------------------------------------------------------------------------- templates
def seed_default_templates(session: Session) -> int:
    """Add the built-in templates when there are none. Returns how many were added."""
    if session.scalar(select(ReportTemplate.id).limit(1)) is not None:
        return 0
    for code, modality, name, technique, findings, impression in DEFAULT_TEMPLATES:
        session.add(
            ReportTemplate(
                procedure_code=code,
                modality=modality,
                name=name,
                indication="",
                technique=technique,
                findings=findings,
                impression=impression,
            )
        )
    session.flush()
    return len(DEFAULT_TEMPLATES)


def study_procedure(study: Study) -> tuple[str, str, str]:
    """(procedure code, description, modality) of a study: from its order when linked,
    else from the images."""
    modality = (study.modalities or "").split("\\")[0]
    if study.order is not None and study.order.requested_procedures:
        rp = study.order.requested_procedures[0]
        code = rp.procedure_code.code if rp.procedure_code else ""
        step_modality = rp.steps[0].modality if rp.steps else ""
        return code, rp.description, step_modality or modality
    return "", study.study_description, modality


def template_for(session: Session, study: Study) -> ReportTemplate:
    """The template for the study's procedure, else its modality's, else the generic one."""
    seed_default_templates(session)
    code, _desc, modality = study_procedure(study)
    candidates = session.scalars(
        select(ReportTemplate).where(or_(ReportTemplate.procedure_code == code, ReportTemplate.procedure_code == ""))
    ).all()

    def rank(t: ReportTemplate) -> int:
        if code and t.procedure_code == code:
            return 0
        if not t.procedure_code and t.modality and t.modality == modality:
            return 1
        if not t.procedure_code and not t.modality:
            return 2
        return 9

    best = min(candidates, key=rank, default=None)
    if best is None or rank(best) == 9:
        raise NotFound("no report template (add a generic one)")
    return best


def starting_text(study: Study, template: ReportTemplate) -> dict[str, str]:
    """The sections a new report of `study` starts with: the template's, with the order's
    reason for exam as the indication (what the referrer asked)."""
    order = study.order
    text = {name: getattr(template, name) for name in SECTIONS}
    if order is not None and order.reason_for_exam:
        text["indication"] = order.reason_for_exam
    return text


# --------------------------------------------------------------------------- lifecycle
def report_of(session: Session, study: Study) -> Report | None:
    return session.scalar(select(Report).where(Report.study_id == study.id))


def start_report(session: Session, study: Study, user: User) -> Report:
    """The study's report; a new DRAFT filled from the procedure's template when none."""
    report = report_of(session, study)
    if report is not None:
        return report
    template = template_for(session, study)
    report = Report(study_id=study.id, status=DRAFT, author_id=user.id, template_id=template.id)
    report.versions.append(
        ReportVersion(version=1, kind=ORIGINAL, status=DRAFT, author_id=user.id, **starting_text(study, template))
    )
    try:
        with session.begin_nested():  # two readers opening the same study at once
            session.add(report)
            session.flush()
    except IntegrityError:
        existing = report_of(session, study)
        if existing is None:
            raise
        return existing
    log.info("report %d started from template %r", report.id, template.name)
    return report


def current_version(report: Report) -> ReportVersion:
    return report.versions[-1]


def _editable(version: ReportVersion) -> None:
    if version.status == FINAL:
        raise Conflict("a signed version cannot be changed: add an addendum")


def save_report(
    session: Session,
    report: Report,
    user: User,
    sections: dict[str, str],
    action: str = "draft",
    *,
    expected_version: int | None = None,
) -> ReportVersion:
    """Save the text of the open version (original or addendum) and move it:
    action 'draft' keeps it DRAFT, 'preliminary' makes it PRELIMINARY, 'sign' makes it FINAL.
    `expected_version`: the version's lock_version the editor's page was built from; a
    colleague's save or signature since then is a StaleVersion naming them, never overwritten."""
    if action not in ("draft", "preliminary", "sign"):
        raise Invalid("action must be draft, preliminary or sign", field="action")
    version = current_version(report)
    lock_row(session, version)
    if expected_version is not None and expected_version != version.lock_version:
        raise StaleVersion("report", version.changed_by, version.updated_at)
    _editable(version)
    if version.kind == ORIGINAL:
        for name in SECTIONS:
            if name in sections:
                setattr(version, name, sections[name].replace("\r\n", "\n"))
    elif "addendum" in sections:
        version.addendum = sections["addendum"].replace("\r\n", "\n")
    version.author_id = version.author_id or user.id
    now = utcnow()
    if action == "preliminary":
        if version.kind == ADDENDUM:
            raise Invalid("an addendum is draft or signed, not preliminary", field="action")
        version.status, version.preliminary_by_id, version.preliminary_at = PRELIMINARY, user.id, now
    elif action == "sign":
        if version.kind == ORIGINAL and not version.impression.strip():
            raise Invalid("the impression is empty", field="impression")
        if version.kind == ADDENDUM and not version.addendum.strip():
            raise Invalid("the addendum is empty", field="addendum")
        version.status, version.signed_by_id, version.signed_at = FINAL, user.id, now
    if version.kind == ORIGINAL:
        report.status = version.status
    if version.status == FINAL:
        report.status = FINAL
        report.finalized_at = report.finalized_at or now
    report.updated_at = now
    session.flush()
    if action == "sign":  # in the signing transaction: committed with the signature or not at all
        queue_publication(session, version)
    log.info("report %d version %d saved as %s", report.id, version.version, version.status)
    return version


def start_addendum(session: Session, report: Report, user: User) -> ReportVersion:
    """Open an addendum (the next version) on a FINAL report; the original is kept."""
    if report.status != FINAL:
        raise Conflict("addenda are for signed reports: edit the report itself")
    last = current_version(report)
    if last.status != FINAL:
        return last  # an addendum is already open
    version = ReportVersion(version=last.version + 1, kind=ADDENDUM, status=DRAFT, author_id=user.id)
    report.versions.append(version)
    session.flush()
    return version


def record_critical_result(
    session: Session,
    report: Report,
    user: User,
    *,
    communicated_to: str,
    method: str,
    communicated_at: datetime | None = None,
    note: str = "",
) -> CriticalResult:
    """Flag the report critical and record that the result was communicated."""
    if not communicated_to.strip():
        raise Invalid("say who was told", field="communicated_to")
    if method not in COMMUNICATION_METHODS:
        raise Invalid(f"method must be one of {', '.join(COMMUNICATION_METHODS)}", field="method")
    result = CriticalResult(
        communicated_to=communicated_to.strip()[:128],
        method=method,
        communicated_at=communicated_at or utcnow(),
        note=note.strip(),
        recorded_by_id=user.id,
    )
    report.critical = True
    report.critical_results.append(result)
    session.flush()
    return result


def signed_versions(report: Report) -> list[ReportVersion]:
    return [v for v in report.versions if v.status == FINAL]


def report_text(report: Report, upto: ReportVersion | None = None) -> list[tuple[str, str]]:
    """The report as (heading, text) pairs: the original's sections, then each signed
    addendum, up to and including `upto`. The text every output (PDF, DICOM, ORU) shows."""
    original = report.versions[0]
    parts = [(name.capitalize(), getattr(original, name)) for name in SECTIONS]
    for v in report.versions[1:]:
        if upto is not None and v.version > upto.version:
            break
        if v.status == FINAL or v is upto:
            when = to_site(v.signed_at).strftime("%Y-%m-%d %H:%M") if v.signed_at else "unsigned"
            parts.append((f"Addendum {v.version - 1} ({when})", v.addendum))
    return parts


# --------------------------------------------------------------------------- lookups
def study_by_uid(session: Session, study_instance_uid: str) -> Study:
    study = session.scalar(select(Study).where(Study.study_instance_uid == study_instance_uid))
    if study is None:
        raise NotFound("no such study")
    return study


def report_of_order(session: Session, order: Order) -> Report | None:
    """The report of an order's (first) study, for the order page."""
    return session.scalar(
        select(Report)
        .join(Study, Study.id == Report.study_id)
        .where(Study.order_id == order.id)
        .order_by(Study.id)
        .limit(1)
    )
