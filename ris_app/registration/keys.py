"""Search keys of a patient, kept in columns beside what was written (ris_app/model,
filled on every write of a patient by a mapper event): a name folded without accents or
case, the MRN as compared, the phone's digits. Plain functions of text (no database, no
settings), so the model, the migration's backfill and the search share them."""

from __future__ import annotations

import re
import unicodedata

NAME_KEY_LENGTH = 400  # three folded parts of 128 characters and their separators


def fold(name: str) -> str:
    """A name without accents, case, spaces, hyphens or apostrophes: Müller and MULLER
    fold alike, as do O'Brien and Obrien."""
    decomposed = unicodedata.normalize("NFKD", name or "")
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return re.sub(r"[\s\-'.]", "", bare.casefold())


def name_key(family: str, given: str = "", middle: str = "") -> str:
    """The folded family, given and middle names, each a word: "muller hans". A search
    term matches when it is contained in the key."""
    return " ".join(p for p in (fold(family), fold(given), fold(middle)) if p)[:NAME_KEY_LENGTH]


def mrn_key(mrn: str) -> str:
    """The MRN as compared when the site compares MRNs without case (the default):
    p2001 and P2001 are one patient. The MRN itself is kept as first written."""
    return (mrn or "").strip().upper()


def phone_digits(phone: str) -> str:
    """Only the digits of a phone number: +49 (30) 1234-56 and 0049301234 56 compare."""
    return re.sub(r"\D", "", phone or "")[:64]


def fill(patient) -> None:
    """Set the patient's search keys from what it holds (called before every write)."""
    patient.name_key = name_key(patient.family_name, patient.given_name, patient.middle_name)
    patient.mrn_key = mrn_key(patient.mrn)
    patient.phone_digits = phone_digits(patient.phone)
