"""Input rules per field kind, for whatever becomes a DICOM value: one place, applied the
same to pages, the API, HL7 and the worklist import.

Each rule names the DICOM value representation (VR) the RIS field becomes in the worklist
(PS3.5 6.2) and keeps its length limit and character repertoire. The write paths of
`scheduling.orders` call `check_patient` and `check_order`, so no path can store what a
scanner would choke on; the readers of each edge (web.validation, hl7.reading) call the
same functions to name the field early. Every refusal raises `Invalid` naming the field.
"""

from __future__ import annotations

import re
from datetime import date

from ris_app.clock import site_today
from ris_app.errors import Invalid

# DICOM PS3.16 CID 29 "Acquisition Modality" and the defined terms of Modality (0008,0060),
# PS3.3 C.7.3.1.1.1, retired terms included: a worklist item carries one of these.
_MODALITY_TERMS = """
    ANN AR ASMT AU BDUS BI BMD CR CT CTPROTOCOL DG DMS DOC DX ECG EEG EMG EOG EPS ES FID GM HC HD
    IO IOL IVOCT IVUS KER KO LEN LS MG MR M3D NM OAM OCT OP OPM OPT OPTBSV OPTENF OPV OSS OT PA
    PLAN POS PR PT PX REG RESP RF RG RTDOSE RTIMAGE RTINTENT RTPLAN RTRAD RTRECORD RTSEGANN
    RTSTRUCT RWV SEG SM SMR SR SRF STAIN TEXTUREMAP TG US VA XA XAPROTOCOL XC
    AS CD CF CP CS DD DF DM DS EC FA FS LP MA MS OPR ST VF
"""
MODALITIES: frozenset[str] = frozenset(_MODALITY_TERMS.split())

# Characters no DICOM text value may hold: C0 and C1 controls and DEL (ESC is only for ISO
# 2022 code extensions, which the RIS never writes: it speaks ISO_IR 192), lone surrogates
# (no encoding can store them), and the line/paragraph separators some parsers split on.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
LANGUAGE = re.compile(r"[a-z]{2,3}(-[A-Za-z]{2,4})?")  # BCP 47 language[-region], as the templates are named

# field kind -> (VR, max length, characters that are DICOM separators there)
LO = ("LO", 64, "\\")
SH = ("SH", 16, "\\")
PN_COMPONENT = ("PN", 64, "\\^=")
PN = ("PN", 128, "\\=")
UT = ("UT", 512, "")


def check_text(field: str, value: str, kind: tuple[str, int, str] = LO) -> str:
    """A text value of a VR: no control characters, within the length, no separators."""
    vr, max_len, forbid = kind
    if not isinstance(value, str):
        raise Invalid("must be a string", field=field)
    if CONTROL.search(value):
        raise Invalid("holds a control character or an unpaired surrogate", field=field)
    if len(value) > max_len:
        raise Invalid(f"is longer than {max_len} characters (DICOM {vr})", field=field)
    bad = sorted({ch for ch in value if ch in forbid})
    if bad:
        raise Invalid(
            f"holds {' and '.join(repr(ch) for ch in bad)}, which is not allowed here (a DICOM separator)",
            field=field,
        )
    return value


def check_mrn(value: str, field: str = "mrn") -> str:
    """PatientID (LO): also no '/', so that /api/patients/<mrn> can reach every patient,
    and no leading or trailing space (DICOM pads LO with spaces: they would not survive)."""
    check_text(field, value)
    if not value.strip():
        raise Invalid("is required", field=field)
    if "/" in value:
        raise Invalid("may not contain '/'", field=field)
    if value != value.strip():
        raise Invalid("may not start or end with a space", field=field)
    return value


def check_birth_date(value: date | None, field: str = "birth_date") -> date | None:
    if value is None:
        return None
    if value > site_today():
        raise Invalid("is in the future", field=field)
    return value


def check_uid(value: str, field: str = "study_instance_uid") -> str:
    """A DICOM UID (UI): digits and dots, at most 64 characters, components without leading zeros."""
    if len(value) > 64:
        raise Invalid("is longer than 64 characters (DICOM UI)", field=field)
    if not _UID.match(value):
        raise Invalid("must be a DICOM UID: digits and dots, no component with a leading zero", field=field)
    return value


def check_modality(value: str, field: str = "modality") -> str:
    """Modality (CS): one of the DICOM defined terms."""
    if value not in MODALITIES:
        raise Invalid("must be a DICOM modality code such as CT or MR", field=field)
    return value


def check_aet(value: str, field: str = "station_aet") -> str:
    """One AE title or several separated by backslashes: each 1-16 printable ASCII characters."""
    for aet in value.split("\\"):
        if not (0 < len(aet.strip()) <= 16) or not all(" " <= ch <= "~" for ch in aet):
            raise Invalid("each AE title must be 1 to 16 printable ASCII characters", field=field)
    return value


PATIENT_TEXT = {
    "issuer": LO,
    "family_name": PN_COMPONENT,
    "given_name": PN_COMPONENT,
    "middle_name": PN_COMPONENT,
    "name_prefix": PN_COMPONENT,
    "name_suffix": PN_COMPONENT,
    "phone": LO,
    "email": ("LO", 255, ""),
    "address": UT,
    "insurance": ("LO", 255, ""),
}


def check_patient(fields: dict, *, partial: bool = False) -> dict:
    """A patient's fields (all of them, or only the changed ones when `partial`)."""
    if "mrn" in fields or not partial:
        check_mrn(fields.get("mrn") or "")
    for name, kind in PATIENT_TEXT.items():
        if name in fields:
            if fields[name] is None:
                raise Invalid("may not be null", field=name)
            check_text(name, fields[name], kind)
    if ("family_name" in fields or not partial) and not (fields.get("family_name") or "").strip():
        raise Invalid("is required", field="family_name")
    if "birth_date" in fields:
        check_birth_date(fields["birth_date"])
    if fields.get("language") and not LANGUAGE.fullmatch(fields["language"]):
        raise Invalid("a language code such as en, fr or pt-BR", field="language")
    return fields


ORDER_TEXT = {
    "accession_number": SH,
    "station_name": SH,
    "location": SH,
    "placer_order_number": LO,
    "filler_order_number": LO,
    "referring_physician": PN,
    "performing_physician": PN,
    "reason_for_exam": ("LO", 255, "\\"),  # the column allows what EHRs send; scanners truncate
    "description": LO,
}


def check_order(values: dict) -> dict:
    """An order's DICOM-bound values, by OrderData field name."""
    check_modality(values.get("modality") or "")
    for name, kind in ORDER_TEXT.items():
        if values.get(name):
            check_text(name, values[name], kind)
    if values.get("study_instance_uid"):
        check_uid(values["study_instance_uid"])
    if values.get("station_aet"):
        check_aet(values["station_aet"])
    return values
