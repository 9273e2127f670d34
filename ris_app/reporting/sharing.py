"""Second-opinion share links: the rules. A radiologist shares one study (and, if asked,
its signed report) with an outside colleague; the colleague opens the link in the viewer
part and types a short code the radiologist sent by another way (phone, another e-mail).

- The link's token (in the URL) and the code are shown once, at creation; only their
  hashes are stored. The code's hash covers the token too, so a copy of the database does
  not give the codes away to an offline guess (the token has 256 bits).
- A link is valid DEFAULT_DAYS unless its creator asks for between 1 and the setting's
  maximum ($ORTHANC_RIS_SHARE_MAX_DAYS); it can be revoked; MAX_CODE_ATTEMPTS wrong codes
  lock it. Expired, revoked and locked links are Gone (HTTP 410).
- Every opening, refusal, creation and revocation is an audit event (actor kind "share"
  for the colleague, named by the label the radiologist gave).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from ris_app.audit.trail import Who, record
from ris_app.clock import utcnow
from ris_app.db import lock_row
from ris_app.errors import Gone, Invalid, NotFound
from ris_app.model import FINAL, Report, ReportVersion, ShareLink, Study, User
from ris_app.model.audit import REFUSED
from ris_app.reporting.documents import report_series_uid

DEFAULT_DAYS = 7
MAX_CODE_ATTEMPTS = 5
CODE_LENGTH = 8
# No 0/O, 1/I/L: the code is read aloud or copied by hand.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
RECIPIENT_MAX = 128


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def token_hash(token: str) -> str:
    return _sha256(token)


def code_hash(token: str, code: str) -> str:
    return _sha256(f"{token}:{code.strip().upper()}")


def _who_for(user: User, address: str) -> Who:
    return Who(user.username, "user", address)


def share_who(link: ShareLink, address: str) -> Who:
    """The colleague, as the audit trail names them."""
    return Who(link.recipient, "share", address)


def _audit_fields(link: ShareLink) -> dict:
    study = link.study
    return {
        "resource": study.study_instance_uid,
        "mrn": study.patient_mrn,
        "accession": study.accession_number,
    }


def signed_version(session: Session, study: Study, *, with_pdf: bool = False) -> ReportVersion | None:
    """The latest signed version of the study's report (an addendum when there is one),
    or None; with_pdf: the latest whose PDF is made (the signing outbox makes it)."""
    query = (
        select(ReportVersion)
        .join(Report, ReportVersion.report_id == Report.id)
        .where(Report.study_id == study.id, ReportVersion.status == FINAL)
    )
    if with_pdf:
        query = query.where(ReportVersion.pdf.is_not(None))
    return session.scalar(query.order_by(ReportVersion.version.desc()).limit(1))


def report_copies(session: Session, study: Study) -> tuple[frozenset[str], frozenset[str]]:
    """(SeriesInstanceUIDs, SOPInstanceUIDs) of the study's report copies in the PACS: the
    two report series (their UIDs follow from the study's, so they are known even before
    a copy is stored) and every version's Encapsulated PDF and Basic Text SR instance."""
    uid = study.study_instance_uid
    rows = session.execute(
        select(ReportVersion.sop_instance_uid, ReportVersion.sr_instance_uid)
        .join(Report, ReportVersion.report_id == Report.id)
        .where(Report.study_id == study.id)
    )
    instances = frozenset(u for row in rows for u in row if u)
    return frozenset({report_series_uid(uid, "pdf"), report_series_uid(uid, "sr")}), instances


def create_share(
    session: Session,
    study: Study,
    user: User,
    *,
    recipient: str,
    days: int = DEFAULT_DAYS,
    include_report: bool = False,
    max_days: int,
    address: str = "",
) -> tuple[ShareLink, str, str]:
    """A new link: (the row, the token for the URL, the code). The token and the code
    exist only in what this returns."""
    recipient = " ".join(recipient.split())
    if not recipient:
        raise Invalid("name the colleague (a name or an e-mail address)", field="recipient")
    if len(recipient) > RECIPIENT_MAX:
        raise Invalid(f"at most {RECIPIENT_MAX} characters", field="recipient")
    if not 1 <= days <= max_days:
        raise Invalid(f"between 1 and {max_days} days", field="days")
    if study.deleted_at is not None:
        raise NotFound("the study is no longer in the PACS", field="study")
    if include_report and signed_version(session, study) is None:
        raise Invalid("the report is not signed yet: share the images alone, or sign first", field="include_report")
    token = secrets.token_urlsafe(32)
    code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    link = ShareLink(
        study=study,
        created_by_id=user.id,
        recipient=recipient,
        token_hash=token_hash(token),
        code_hash=code_hash(token, code),
        expires_at=utcnow() + timedelta(days=days),
        include_report=include_report,
        failed_code_attempts=0,
        opened_count=0,
    )
    session.add(link)
    session.flush()
    record(session, "share.create", _who_for(user, address), detail=f"share link {link.id}", **_audit_fields(link))
    return link, token, code


def state(link: ShareLink, now: datetime | None = None) -> str:
    """active, expired, revoked or locked (the first that applies, most final first)."""
    if link.revoked_at is not None:
        return "revoked"
    if link.failed_code_attempts >= MAX_CODE_ATTEMPTS:
        return "locked"
    if (now or utcnow()) >= link.expires_at:
        return "expired"
    return "active"


GONE_TEXT = {
    "revoked": "This link was withdrawn by the radiologist who shared it.",
    "expired": "This link has expired.",
    "locked": "This link was locked after too many wrong codes.",
}


def check_alive(link: ShareLink, now: datetime | None = None) -> ShareLink:
    """`link`, or Gone when it may no longer be used."""
    current = state(link, now)
    if current != "active":
        raise Gone(GONE_TEXT[current], code=f"share_{current}")
    return link


def find_link(session: Session, token: str) -> ShareLink:
    """The link of `token` (NotFound when none), alive or not."""
    link = session.scalar(select(ShareLink).where(ShareLink.token_hash == token_hash(token)))
    if link is None:
        raise NotFound("no such share link", field="token")
    return link


@dataclass
class Opening:
    """What became of a code typed for `link`: `refused` is "" (opened), "wrong_code", or
    the state that makes the link Gone (expired, revoked, locked)."""

    link: ShareLink
    refused: str = ""
    tries_left: int = 0


def open_with_code(session: Session, token: str, code: str, address: str) -> Opening:
    """The colleague types the code. Right: the link counts one more opening (the caller
    then starts the viewer session). Wrong: it counts against the link, which locks at
    MAX_CODE_ATTEMPTS. Either way an audit event; the caller commits in both cases (a
    refusal is not an error to roll back: its count and its event are the point)."""
    link = lock_row(session, find_link(session, token))  # attempts counted exactly under parallel guesses
    who, fields = share_who(link, address), _audit_fields(link)
    current = state(link)
    if current != "active":
        record(session, "share.open", who, outcome=REFUSED, detail=f"share link {link.id}: {current}", **fields)
        return Opening(link, current)
    if not hmac.compare_digest(code_hash(token, code), link.code_hash):
        link.failed_code_attempts += 1
        detail = f"share link {link.id}: wrong code ({link.failed_code_attempts} of {MAX_CODE_ATTEMPTS})"
        record(session, "share.open", who, outcome=REFUSED, detail=detail, **fields)
        left = MAX_CODE_ATTEMPTS - link.failed_code_attempts
        return Opening(link, "wrong_code" if left > 0 else "locked", max(left, 0))
    link.opened_count += 1
    link.last_opened_at = utcnow()
    record(session, "share.open", who, detail=f"share link {link.id}", **fields)
    return Opening(link)


def revoke(session: Session, link: ShareLink, user: User, address: str = "") -> ShareLink:
    """Withdraw `link` at once: its viewer sessions end with their next request."""
    lock_row(session, link)
    if link.revoked_at is None:
        link.revoked_at = utcnow()
        link.revoked_by_id = user.id
        record(session, "share.revoke", _who_for(user, address), detail=f"share link {link.id}", **_audit_fields(link))
    return link


def shares_of(session: Session, study: Study) -> list[ShareLink]:
    """The study's links, newest first (for its page)."""
    return list(session.scalars(select(ShareLink).where(ShareLink.study_id == study.id).order_by(ShareLink.id.desc())))
