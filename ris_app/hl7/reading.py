"""Reading patients and values out of an inbound message through the field table
(`mapping`), and the context every inbound handler works in.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone

from sqlalchemy.orm import Session

from ris_app.clock import from_site
from ris_app.errors import DomainError, Invalid
from ris_app.hl7 import mapping as m
from ris_app.hl7.parse import (
    DATA_TYPE_ERROR,
    DOMAIN_ERROR_CODES,
    REQUIRED_FIELD_MISSING,
    SEGMENT_SEQUENCE_ERROR,
    TABLE_VALUE_NOT_FOUND,
    Hl7Error,
    Message,
    Segment,
    content_error,
    reject,
)
from ris_app.hl7.settings import Hl7Settings
from ris_app.hl7.text import xpn_components
from ris_app.model import Patient
from ris_app.registration.identity import Identifier, choose_mrn
from ris_app.registration.record import add_identifiers
from ris_app.registration.settings import current as registration_settings
from ris_app.scheduling.fields import CONTROL
from ris_app.scheduling.orders import (
    PatientData,
    create_patient,
    find_patient,
)
from ris_app.tracking.corrections import surviving_patient, update_patient_everywhere

log = logging.getLogger(__name__)


SOURCE = "hl7"


@dataclass
class Context:
    session: Session
    settings: Hl7Settings
    accession_prefix: str = "RIS"
    uid_root: str = ""
    # What the desk must look at in an accepted message: ERR segments (severity W) of the AA.
    warnings: list[Hl7Error] = field(default_factory=list)


def family_of(msg: Message) -> str:
    """Which column of the mapping table applies: OMI/OMG and v2.5+ read the 2.5.1 one."""
    if msg.message_code in ("OMI", "OMG") or msg.version >= "2.5":
        return "2.5.1"
    return "2.3.1"


# RIS field names whose mapping key differs (patient name parts all come from PID-5).
_NAME_KEYS = {k: "name" for k in ("family_name", "given_name", "middle_name", "name_prefix", "name_suffix")}


def domain_error(exc: DomainError, fam: str, default_code: int = DATA_TYPE_ERROR) -> Hl7Error:
    """A rule of the RIS (scheduling.fields, a duplicate, ...) as an AE naming the HL7
    location of the field at fault, when the field table maps it."""
    key = _NAME_KEYS.get(exc.field or "", exc.field or "")
    loc = m.locations(key, fam)[0] if key in m.BY_KEY else ""
    return content_error(DOMAIN_ERROR_CODES.get(exc.code, default_code), exc.message, loc)


def field_text(segs: dict[str, Segment], key: str, fam: str, max_len: int, *, forbid: str = "\\") -> tuple[str, str]:
    value, loc = m.read(segs, key, fam)
    assert isinstance(value, str)
    if value == '""':
        return '""', loc
    if len(value) > max_len:
        raise content_error(DATA_TYPE_ERROR, f"{loc} is longer than {max_len} characters", loc)
    if any(ch in value for ch in forbid) or CONTROL.search(value):
        raise content_error(DATA_TYPE_ERROR, f"{loc} holds a character that is not allowed", loc)
    return value, loc


def field_date(value: str, loc: str) -> date | None:
    if not value or value == '""':
        return None
    digits = value[:8]
    try:
        if len(digits) == 8 and digits.isdigit():
            return date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        pass
    raise content_error(DATA_TYPE_ERROR, f"{loc} is not a date (YYYYMMDD)", loc)


_DTM = re.compile(r"^(\d{4})(\d{2})(\d{2})(?:(\d{2})(\d{2})?(\d{2})?(?:\.\d{1,4})?)?(?:([+-])(\d{2})(\d{2}))?$")


def field_datetime(value: str, loc: str) -> datetime | None:
    """HL7 DTM (YYYYMMDD[HH[MM[SS[.S]]]][+/-ZZZZ]) as aware UTC: with an offset it is that
    instant; without one it is the department's wall-clock time (the site zone)."""
    if not value:
        return None
    match = _DTM.match(value)
    if match:
        y, mo, d, h, mi, s = (int(g) if g else 0 for g in match.groups()[:6])
        sign, oh, om = match.groups()[6:]
        try:
            if sign:
                offset = timedelta(hours=int(oh), minutes=int(om)) * (-1 if sign == "-" else 1)
                return datetime(y, mo, d, h, mi, s, tzinfo=timezone(offset)).astimezone(UTC)
            return from_site(datetime(y, mo, d, h, mi, s))
        except (ValueError, OverflowError):  # a day or offset that does not exist
            pass
    raise content_error(DATA_TYPE_ERROR, f"{loc} is not a date and time (YYYYMMDDHHMMSS)", loc)


def pid3_identifiers(pid: Segment) -> list[Identifier]:
    """Every repetition of PID-3 (CX: ID ^ check digit ^ scheme ^ authority ^ type code)."""
    out = []
    for n in range(len(pid.repetitions(3))):
        comps = [*pid.components(3, n), "", "", "", "", ""]
        if comps[0]:
            out.append(Identifier(value=comps[0], authority=comps[3], type_code=comps[4].upper()))
    return out


def identity(pid: Segment | None) -> tuple[Identifier, list[Identifier]]:
    """(the MRN, the other identifiers) of a PID, by the MRN type codes and authority
    settings. A PID with no MRN (only an SSN, say) is refused: AE naming PID-3."""
    ids = pid3_identifiers(pid) if pid is not None else []
    if not ids:
        raise content_error(REQUIRED_FIELD_MISSING, "patient ID (PID-3) is required", "PID-3")
    cfg = registration_settings()
    try:
        return choose_mrn(ids, cfg.mrn_type_codes, cfg.mrn_authority)
    except Invalid as exc:
        raise content_error(REQUIRED_FIELD_MISSING, exc.message, "PID-3") from None


NAME_FORBID = "\\^="


def read_patient(segs: dict[str, Segment], fam: str) -> tuple[dict, str]:
    """The PID's demographics as model attributes: only what the message fills in (an empty
    field means 'no information', the HL7 null "" means 'clear it'). Returns (fields, mrn loc)."""
    out: dict = {}
    mrn, _ = identity(segs.get("PID"))  # PID-3's repetition that is the MRN
    mrn_loc = m.locations("mrn", fam)[0]
    if mrn.value == '""':
        raise content_error(REQUIRED_FIELD_MISSING, "patient ID (PID-3) is required", "PID-3")
    for value, what in ((mrn.value, "patient ID"), (mrn.authority, "assigning authority")):
        if len(value) > 64 or "\\" in value or CONTROL.search(value):
            raise content_error(DATA_TYPE_ERROR, f"{what} in PID-3 is too long or holds a bad character", "PID-3")
    out["mrn"] = mrn.value
    out["issuer"] = "" if mrn.authority == '""' else mrn.authority
    comps, loc = m.read(segs, "name", fam)
    if comps:
        name = xpn_components(list(comps))
        for attr, value in (
            ("family_name", name.family),
            ("given_name", name.given),
            ("middle_name", name.middle),
            ("name_suffix", name.suffix),
            ("name_prefix", name.prefix),
        ):
            if any(ch in value for ch in NAME_FORBID) or CONTROL.search(value):
                raise content_error(DATA_TYPE_ERROR, "a patient name part holds ^, \\, = or a control character", loc)
            if len(value) > 64:
                raise content_error(DATA_TYPE_ERROR, "a patient name part is longer than 64 characters", loc)
            out[attr] = "" if value == '""' else value
    bd, loc = field_text(segs, "birth_date", fam, 26)
    if bd:
        out["birth_date"] = field_date(bd, loc)
    sex, loc = field_text(segs, "sex", fam, 1)
    if sex:
        if sex.upper() not in m.SEX_IN:
            raise content_error(TABLE_VALUE_NOT_FOUND, f"{loc}: sex must be one of M F O U A N", loc)
        out["sex"] = m.SEX_IN[sex.upper()]
    addr, loc = m.read(segs, "address", fam)
    if addr:
        out["address"] = ", ".join(p for p in addr if p and p != '""')[:512]
    phone, _ = field_text(segs, "phone", fam, 64)
    if phone:
        out["phone"] = "" if phone == '""' else phone
    return out, mrn_loc


def lookup_patient(session: Session, mrn: str, issuer: str) -> Patient | None:
    """By MRN and issuer; a patient registered without an issuer matches any issuer. A
    merged patient's MRN finds the survivor it was merged into."""
    if not issuer:
        found = find_patient(session, mrn, None)
    else:
        found = find_patient(session, mrn, issuer) or find_patient(session, mrn, "")
    return surviving_patient(session, found)


def upsert_patient(
    ctx: Context, fields: dict, *, create: bool = True, identifiers: list[Identifier] | None = None
) -> Patient | None:
    """Register or update the patient of `fields`; `identifiers`: its other identifiers
    (PID-3's repetitions that are not the MRN), kept on the patient."""
    patient = _upsert(ctx, fields, create=create)
    if patient is not None and identifiers:
        add_identifiers(patient, identifiers)
    return patient


def _upsert(ctx: Context, fields: dict, *, create: bool) -> Patient | None:
    patient = lookup_patient(ctx.session, fields["mrn"], fields.get("issuer", ""))
    if patient is None:
        if not create:
            return None
        if not fields.get("family_name"):
            raise content_error(REQUIRED_FIELD_MISSING, "patient name (PID-5) is required to register", "PID-5")
        try:
            return create_patient(ctx.session, PatientData(**fields))
        except DomainError as exc:
            raise domain_error(exc, "2.5.1") from None  # PID is read alike in both families
    changes = {k: v for k, v in fields.items() if k != "mrn" and (k != "issuer" or v)}
    changes = {k: v for k, v in changes.items() if getattr(patient, k) != v}
    if changes:  # also queues the correction of the patient's studies in Orthanc
        try:
            update_patient_everywhere(ctx.session, patient, changes, user="hl7")
        except DomainError as exc:
            raise domain_error(exc, "2.5.1") from None
    return patient


def segments(msg: Message, *names: str) -> dict[str, Segment]:
    return {n: s for n in names if (s := msg.segment(n)) is not None}


def required_segment(msg: Message, name: str) -> Segment:
    seg = msg.segment(name)
    if seg is None:
        raise reject(SEGMENT_SEQUENCE_ERROR, f"required segment {name} is missing", name)
    return seg
