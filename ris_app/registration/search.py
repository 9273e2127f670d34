"""Finding patients: by name ignoring accents and case, birth date, MRN (exact or its
beginning) or phone (digits compared), and the one MRN comparison every lookup uses.

The search reads the key columns the model fills on every write (registration/keys.py):
plain equality and LIKE on them, the same SQL on SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from ris_app.model import Patient
from ris_app.registration.keys import fold, mrn_key, phone_digits
from ris_app.registration.settings import current

LIMIT, MAX_LIMIT = 20, 50
MIN_PHONE_DIGITS = 4  # fewer digits would match half the phone book
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_PHONE = re.compile(r"^\+?[\d\s()/.\-]+$")
_SPLIT = re.compile(r"[\s,;^]+")


# ------------------------------------------------------------------ the MRN as the site compares it
def case_insensitive() -> bool:
    return current().mrn_case_insensitive


def mrn_clause(mrn: str):
    """The SQL condition "this patient has MRN `mrn`", as ORTHANC_RIS_MRN_CASE_INSENSITIVE
    says: by the key (p2001 = P2001) or exactly. The one comparison of MRNs."""
    return Patient.mrn_key == mrn_key(mrn) if case_insensitive() else Patient.mrn == mrn


def names_mrn(column, mrn: str):
    """The SQL condition "`column` (a PatientID kept elsewhere, e.g. a study's) is `mrn`",
    compared as mrn_clause (upper() is portable; the key is upper-cased MRN)."""
    return func.upper(column) == mrn_key(mrn) if case_insensitive() else column == mrn


def mrn_in(mrns: Iterable[str]):
    """The SQL condition "this patient's MRN is one of `mrns`" (compared as mrn_clause)."""
    if case_insensitive():
        return Patient.mrn_key.in_({mrn_key(m) for m in mrns})
    return Patient.mrn.in_(set(mrns))


def same_mrn(a: str | None, b: str | None) -> bool:
    """Whether two MRNs name one patient (compared as mrn_clause); empty names nobody."""
    if not a or not b:
        return False
    return mrn_key(a) == mrn_key(b) if case_insensitive() else a == b


def mrn_folded(value: str) -> str:
    """A PatientID (or a DICOM query value) as compared: the key's case when the site
    ignores it, else as it is (wildcards * and ? are left alone either way)."""
    return (value or "").upper() if case_insensitive() else value or ""


def mrn_column():
    """The column the worklist's PatientID is compared on (see mrn_folded)."""
    return Patient.mrn_key if case_insensitive() else Patient.mrn


# ------------------------------------------------------------------ the search
def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _birth_date(term: str) -> date | None:
    if not _ISO_DATE.match(term):
        return None
    try:
        return date.fromisoformat(term)
    except ValueError:
        return None


def _text_clause(text: str):
    """What the words of the query (dates taken out) may be: an MRN or its beginning, a
    phone number, or words of the name (each contained in the folded name)."""
    clauses = []
    key = mrn_key(text)
    if key and " " not in key:
        clauses.append(Patient.mrn_key.like(f"{_like_escape(key)}%", escape="\\"))
    digits = phone_digits(text)
    if _PHONE.match(text) and len(digits) >= MIN_PHONE_DIGITS:
        clauses.append(Patient.phone_digits.like(f"%{digits}%"))
    words = [fold(w) for w in _SPLIT.split(text)]
    words = [w for w in words if w]
    if words:
        clauses.append(and_(*(Patient.name_key.like(f"%{_like_escape(w)}%", escape="\\") for w in words)))
    return or_(*clauses) if clauses else None


def search_patients(session: Session, query: str, limit: int = LIMIT) -> list[Patient]:
    """Patients matching `query`: a birth date (YYYY-MM-DD), an MRN or its beginning, a
    phone number (digits compared), words of the name ignoring accents and case ("muller"
    finds Müller, "muller hans" MÜLLER^Hans), or a name with a birth date. Best first: the
    exact MRN, MRNs that begin so, then by name; merged records last. Empty query: none."""
    terms = [t for t in _SPLIT.split((query or "").strip()) if t]
    if not terms:
        return []
    born = [d for d in map(_birth_date, terms) if d is not None]
    text = " ".join(t for t in terms if _birth_date(t) is None)
    where = []
    if len(set(born)) > 1:
        return []  # two different birth dates: nobody
    if born:
        where.append(Patient.birth_date == born[0])
    if text:
        clause = _text_clause(text)
        if clause is None:
            return []
        where.append(clause)
    key = mrn_key(text)
    rank = case(
        (Patient.mrn_key == key, 0),
        (Patient.mrn_key.like(f"{_like_escape(key)}%", escape="\\"), 1),
        else_=2,
    )
    stmt = (
        select(Patient)
        .where(*where)
        .order_by(
            Patient.merged_into_id.is_not(None),
            rank,
            Patient.name_key,  # folded: the same order on SQLite and PostgreSQL, whatever the collation
            Patient.birth_date,
            Patient.id,
        )
        .limit(max(1, min(limit, MAX_LIMIT)))
    )
    return list(session.scalars(stmt))
