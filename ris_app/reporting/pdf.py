"""The signed report as a PDF (reportlab), in the site's time."""

from __future__ import annotations

import io
import logging
from datetime import datetime

from ris_app.clock import site_text
from ris_app.model import FINAL, Report, ReportVersion
from ris_app.reporting import fonts
from ris_app.reporting.header import ReportHeader
from ris_app.reporting.lifecycle import report_text

log = logging.getLogger(__name__)


def signed_text(when: datetime) -> str:
    """A signing time as a reader of the PDF wants it: the site's time and its zone
    (2026-11-30 14:30 CET; UTC on a site in UTC)."""
    return site_text(when)


def _para(text: str) -> str:
    return fonts.markup(text)


def _bold(text: str) -> str:
    return fonts.markup(text, bold=True)


def _fmt_date(value: str) -> str:
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 and value.isdigit() else value


def render_pdf(report: Report, version: ReportVersion, header: ReportHeader, institution: str = "") -> bytes:
    """The signed report as PDF: patient, exam, the report text, the signature(s)."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    regular, bold = fonts.base_fonts()
    body = ParagraphStyle("body", fontName=regular, fontSize=10, leading=13)
    h1 = ParagraphStyle("h1", fontName=bold, fontSize=15, leading=19, spaceAfter=4)
    h2 = ParagraphStyle("h2", fontName=bold, fontSize=11, leading=14, spaceBefore=8, spaceAfter=2)
    small = ParagraphStyle("small", parent=body, fontSize=8.5, leading=11, textColor=colors.grey)

    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf,
        pagesize=A4,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=16 * mm,
        bottomMargin=16 * mm,
        title=f"Radiology report {header.accession_number}",
        author="orthanc-ris",
        subject=header.procedure,
    )
    amended = version.version > 1
    story = [Paragraph(_bold(institution or "Radiology report"), h1)]
    if amended:
        story.append(Paragraph(_bold(f"AMENDED: includes addendum {version.version - 1}"), h2))
    rows = [
        ("Patient", header.display_name, "Patient ID", header.patient_id),
        ("Birth date", _fmt_date(header.birth_date) or "—", "Sex", header.sex or "—"),
        ("Exam", header.procedure or "—", "Modality", header.modality or "—"),
        ("Accession", header.accession_number or "—", "Study date", _fmt_date(header.study_date) or "—"),
        ("Referring", (header.referring_physician or "—").replace("^", " "), "Status", FINAL),
    ]
    table = Table(
        [[Paragraph(_para(c), body) for c in r] for r in rows], colWidths=[25 * mm, 60 * mm, 25 * mm, 64 * mm]
    )
    table.setStyle(
        TableStyle(
            [
                ("BACKGROUND", (0, 0), (0, -1), colors.whitesmoke),
                ("BACKGROUND", (2, 0), (2, -1), colors.whitesmoke),
                ("GRID", (0, 0), (-1, -1), 0.4, colors.lightgrey),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ]
        )
    )
    story += [table, Spacer(1, 4 * mm)]
    for heading, text in report_text(report, upto=version):
        story.append(Paragraph(_bold(heading), h2))
        story.append(Paragraph(_para(text.strip() or "—"), body))
    story.append(Spacer(1, 6 * mm))
    for v in report.versions:
        if v.version > version.version or v.status != FINAL or v.signed_at is None:
            continue
        who = v.signed_by.full_name or v.signed_by.username if v.signed_by else "unknown"
        what = "Report" if v.version == 1 else f"Addendum {v.version - 1}"
        story.append(Paragraph(_para(f"{what} electronically signed by {who} on {signed_text(v.signed_at)}"), body))
    story.append(Spacer(1, 3 * mm))
    story.append(Paragraph(_para(f"Study {header.study_instance_uid}"), small))
    doc.build(story)
    return buf.getvalue()
