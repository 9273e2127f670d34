"""Likely duplicates at registration: another patient who is probably the same person,
named with the reason (same birth date and a name equal once accents and case are
ignored, the same birth date with given and family names transposed, the same phone).
A warning only: twins share birth dates and families share phones."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ris_app.model import Patient
from ris_app.registration.keys import fold
from ris_app.registration.keys import phone_digits as _digits


def reasons(patient: Patient, other: Patient) -> list[str]:
    """Why `other` may be the same person as `patient` (empty: no reason)."""
    out = []
    family, given = fold(patient.family_name), fold(patient.given_name)
    o_family, o_given = fold(other.family_name), fold(other.given_name)
    if patient.birth_date is not None and patient.birth_date == other.birth_date:
        if (family, given) == (o_family, o_given):
            out.append("same birth date and name (ignoring accents and case)")
        elif family and given and (family, given) == (o_given, o_family):
            out.append("same birth date, given and family names transposed")
    phone = _digits(patient.phone)
    if len(phone) >= 6 and phone == _digits(other.phone):
        out.append("same phone number")
    return out


def possible_duplicates(session: Session, patient: Patient, limit: int = 5) -> list[dict]:
    """Other (unmerged) patients who may be this one: [{mrn, issuer, reasons}]."""
    clauses = []
    if patient.birth_date is not None:
        clauses.append(Patient.birth_date == patient.birth_date)
    if len(_digits(patient.phone)) >= 6:
        clauses.append(Patient.phone_digits == _digits(patient.phone))  # the digits, however written
    if not clauses:
        return []
    stmt = select(Patient).where(or_(*clauses), Patient.id != patient.id, Patient.merged_into_id.is_(None))
    out = []
    for other in session.scalars(stmt.order_by(Patient.id).limit(2000)):
        why = reasons(patient, other)
        if why:
            out.append({"mrn": other.mrn, "issuer": other.issuer, "reasons": why})
            if len(out) >= limit:
                break
    return out
