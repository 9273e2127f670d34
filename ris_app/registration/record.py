"""The patient's clinical record and insurance: reading, writing (one validation for the
API, the pages and HL7), and its JSON shape.

Why this long: one section per kind of fact of the record (measures, allergies, renal
results, implants, identifiers, insurance), each with its rule and its reader; they are
one capability and read best together.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime

from sqlalchemy.orm import object_session

from ris_app.errors import Invalid
from ris_app.model import (
    Allergy,
    Implant,
    LabResult,
    Order,
    OrderPreauth,
    Patient,
    PatientIdentifier,
    PatientRecord,
)
from ris_app.model.registration import (
    CONTRAST_CLASSES,
    LAB_TESTS,
    MR_SAFETY,
    PREAUTH_STATUSES,
    PREGNANCY_STATUSES,
    SEVERITIES,
)
from ris_app.registration.identity import Identifier
from ris_app.scheduling.fields import CONTROL

# Words in an allergy's agent that say which contrast class it is (upper case). "contrast"
# alone: a reaction to some contrast agent, of a class nobody wrote down.
AGENT_CLASSES: tuple[tuple[str, str], ...] = (
    ("GADO", "gadolinium"),  # gadolinium, gadobutrol, gadoterate, gadopentetate, ...
    ("MAGNEVIST", "gadolinium"),
    ("DOTAREM", "gadolinium"),
    ("IOD", "iodinated"),  # iodine, iodinated, iodixanol
    ("IOHEXOL", "iodinated"),
    ("IOPAMIDOL", "iodinated"),
    ("IOPROMIDE", "iodinated"),
    ("IOMEPROL", "iodinated"),
    ("OMNIPAQUE", "iodinated"),
    ("VISIPAQUE", "iodinated"),
    ("CONTRAST", "contrast"),
)
ALLERGY_CLASSES = ("", *CONTRAST_CLASSES, "contrast")

# Record fields: name -> (kind, max length). Kinds: text, date, number, choice.
RECORD_FIELDS: dict[str, tuple[str, int]] = {
    "pregnancy_status": ("choice", 20),
    "pregnancy_recorded_on": ("date", 0),
    "weight_kg": ("number", 500),
    "height_m": ("number", 3),
    "measured_on": ("date", 0),
    "mobility": ("text", 64),
    "interpreter": ("text", 64),
}
INSURANCE_FIELDS: dict[str, int] = {
    "payer": 128,
    "plan": 128,
    "member_number": 64,
    "group_number": 64,
    "subscriber": 128,
}


def agent_class_of(agent: str) -> str:
    """The contrast class an allergy's agent names ("" for anything else)."""
    upper = agent.upper()
    for word, cls in AGENT_CLASSES:
        if word in upper:
            return cls
    return ""


def _text(field: str, value: object, max_len: int, *, required: bool = False) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise Invalid("must be a string", field=field)
    value = value.strip()
    if CONTROL.search(value) or "\\" in value:
        raise Invalid("holds a control character or a backslash", field=field)
    if len(value) > max_len:
        raise Invalid(f"is longer than {max_len} characters", field=field)
    if required and not value:
        raise Invalid("is required", field=field)
    return value


def _choice(field: str, value: object, choices) -> str:
    value = "" if value is None else value
    if value not in choices:
        raise Invalid(f"must be one of {', '.join(c for c in choices if c) or 'empty'}", field=field)
    return value  # type: ignore[return-value]


def _date(field: str, value: object) -> date | None:
    if value in (None, ""):
        return None
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise Invalid("must be a date (YYYY-MM-DD)", field=field) from None


def _number(field: str, value: object, upper: float) -> float | None:
    if value in (None, ""):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise Invalid("must be a number", field=field)
    try:
        number = float(value)
    except ValueError:
        raise Invalid("must be a number", field=field) from None
    if not math.isfinite(number) or number <= 0 or number > upper:
        raise Invalid(f"must be above 0 and at most {upper}", field=field)
    return number


def _datetime(field: str, value: object) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(str(value))
        except ValueError:
            raise Invalid("must be a date and time with its offset (ISO 8601)", field=field) from None
    if parsed.tzinfo is None:
        raise Invalid("needs its UTC offset", field=field)
    return parsed.astimezone(UTC)


# ------------------------------------------------------------------ the record row
def record_of(patient: Patient, *, create: bool = False) -> PatientRecord | None:
    rec = patient.record  # type: ignore[attr-defined]
    if rec is None and create:
        rec = PatientRecord(patient=patient)
        session = object_session(patient)
        if session is not None:
            session.add(rec)
    return rec


def update_record(patient: Patient, changes: dict, *, prefix: str = "record") -> None:
    """Change record fields (only those given)."""
    values: dict = {}
    for name, value in changes.items():
        if name not in RECORD_FIELDS:
            raise Invalid("is not a field of the record", field=f"{prefix}.{name}")
        kind, limit = RECORD_FIELDS[name]
        field = f"{prefix}.{name}"
        if kind == "choice":
            values[name] = _choice(field, value, ("", *PREGNANCY_STATUSES))
        elif kind == "date":
            values[name] = _date(field, value)
        elif kind == "number":
            values[name] = _number(field, value, limit)
        else:
            values[name] = _text(field, value, limit)
    rec = record_of(patient, create=True)
    for name, value in values.items():
        setattr(rec, name, value)


# ------------------------------------------------------------------ insurance
@dataclass(frozen=True)
class Insurance:
    payer: str = ""
    plan: str = ""
    member_number: str = ""
    group_number: str = ""
    subscriber: str = ""
    note: str = ""  # the free-text insurance field kept from before

    def as_dict(self) -> dict:
        return asdict(self)


def insurance_of(patient: Patient) -> Insurance:
    """The patient's insurance as data: the one accessor (billing reads it)."""
    rec = record_of(patient)
    fields = {name: getattr(rec, name) if rec is not None else "" for name in INSURANCE_FIELDS}
    return Insurance(**fields, note=patient.insurance or "")


def update_insurance(patient: Patient, changes: dict) -> None:
    values = {}
    for name, value in changes.items():
        if name not in INSURANCE_FIELDS:
            raise Invalid("is not a field of insurance", field=f"insurance.{name}")
        values[name] = _text(f"insurance.{name}", value, INSURANCE_FIELDS[name])
    rec = record_of(patient, create=True)
    for name, value in values.items():
        setattr(rec, name, value)


def set_preauth(order: Order, number: object, status: object) -> OrderPreauth:
    """The order's pre-authorisation number and status."""
    pre = order.preauth  # type: ignore[attr-defined]
    if pre is None:
        pre = OrderPreauth(order=order)
        session = object_session(order)
        if session is not None:
            session.add(pre)
    pre.number = _text("preauth_number", number, 64)
    pre.status = _choice("preauth_status", status, PREAUTH_STATUSES)
    return pre


# ------------------------------------------------------------------ allergies, implants, labs
def add_allergy(
    patient: Patient,
    agent: object,
    *,
    reaction: object = "",
    severity: object = "unknown",
    agent_class: object = None,
    source: str = "",
    field: str = "allergies",
) -> Allergy:
    """Record an allergy; the same agent again updates the one recorded."""
    agent = _text(f"{field}.agent", agent, 128, required=True)
    cls = (
        agent_class_of(agent)
        if agent_class in (None, "")
        else _choice(f"{field}.agent_class", agent_class, ALLERGY_CLASSES)
    )
    reaction = _text(f"{field}.reaction", reaction, 128)
    severity = _choice(f"{field}.severity", severity or "unknown", SEVERITIES)
    for known in patient.allergies:  # type: ignore[attr-defined]
        if known.agent.casefold() == agent.casefold():
            known.agent_class, known.reaction, known.severity = cls, reaction or known.reaction, severity
            return known
    allergy = Allergy(agent=agent, agent_class=cls, reaction=reaction, severity=severity, source=source)
    patient.allergies.append(allergy)  # type: ignore[attr-defined]
    return allergy


def add_implant(
    patient: Patient, description: object, mr_safety: object = "unknown", *, field: str = "implants"
) -> Implant:
    description = _text(f"{field}.description", description, 128, required=True)
    implant = Implant(
        description=description, mr_safety=_choice(f"{field}.mr_safety", mr_safety or "unknown", MR_SAFETY)
    )
    patient.implants.append(implant)  # type: ignore[attr-defined]
    return implant


def add_lab_result(
    patient: Patient,
    test: object,
    value: object,
    observed_at: object,
    *,
    unit: object = "",
    code: object = "",
    source: str = "",
    field: str = "lab_results",
) -> LabResult:
    """Record a renal result; the same test, time and value again is not stored twice."""
    test = _choice(f"{field}.test", test, LAB_TESTS)
    number = _number(f"{field}.value", value, 100_000)
    if number is None:
        raise Invalid("is required", field=f"{field}.value")
    when = _datetime(f"{field}.observed_at", observed_at)
    for known in patient.lab_results:  # type: ignore[attr-defined]
        if known.test == test and known.observed_at == when and known.value == number:
            return known
    result = LabResult(
        test=test,
        value=number,
        observed_at=when,
        unit=_text(f"{field}.unit", unit, 32),
        code=_text(f"{field}.code", code, 32),
        source=source[:64],
    )
    patient.lab_results.append(result)  # type: ignore[attr-defined]
    return result


def latest_lab(patient: Patient, test: str) -> LabResult | None:
    results = [r for r in patient.lab_results if r.test == test]  # type: ignore[attr-defined]
    return max(results, key=lambda r: r.observed_at) if results else None


def add_identifiers(patient: Patient, identifiers: list[Identifier]) -> None:
    """Keep these as the patient's other identifiers (those already kept stay)."""
    known = {(i.value, i.type_code, i.authority) for i in patient.identifiers}  # type: ignore[attr-defined]
    for ident in identifiers:
        if ident.value == patient.mrn and ident.authority in ("", patient.issuer):
            continue
        key = (ident.value[:64], ident.type_code[:16], ident.authority[:64])
        if key not in known:
            known.add(key)
            patient.identifiers.append(PatientIdentifier(value=key[0], type_code=key[1], authority=key[2]))  # type: ignore[attr-defined]


# ------------------------------------------------------------------ in and out as JSON
def _list(body: dict, name: str) -> list[dict]:
    items = body.get(name)
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise Invalid("must be a list of objects", field=name)
    return items


def apply_json(patient: Patient, body: dict, *, source: str = "api") -> None:
    """The record parts of a patient's JSON (API, pages): record and insurance change the
    fields given; allergies and implants, when given, are the whole list; lab_results and
    other_identifiers are added."""
    if isinstance(body.get("record"), dict):
        update_record(patient, body["record"])
    elif "record" in body:
        raise Invalid("must be an object", field="record")
    if isinstance(body.get("insurance_details"), dict):
        update_insurance(patient, body["insurance_details"])
    if "allergies" in body:
        items = _list(body, "allergies")
        patient.allergies.clear()  # type: ignore[attr-defined]
        for n, a in enumerate(items):
            add_allergy(
                patient,
                a.get("agent"),
                reaction=a.get("reaction", ""),
                severity=a.get("severity") or "unknown",
                agent_class=a.get("agent_class"),
                source=source,
                field=f"allergies[{n}]",
            )
    if "implants" in body:
        items = _list(body, "implants")
        patient.implants.clear()  # type: ignore[attr-defined]
        for n, i in enumerate(items):
            add_implant(patient, i.get("description"), i.get("mr_safety") or "unknown", field=f"implants[{n}]")
    if "lab_results" in body:
        for n, r in enumerate(_list(body, "lab_results")):
            add_lab_result(
                patient,
                r.get("test"),
                r.get("value"),
                r.get("observed_at"),
                unit=r.get("unit", ""),
                code=r.get("code", ""),
                source=source,
                field=f"lab_results[{n}]",
            )
    if "other_identifiers" in body:
        ids = []
        for n, i in enumerate(_list(body, "other_identifiers")):
            ids.append(
                Identifier(
                    _text(f"other_identifiers[{n}].value", i.get("value"), 64, required=True),
                    _text(f"other_identifiers[{n}].authority", i.get("authority"), 64),
                    _text(f"other_identifiers[{n}].type_code", i.get("type_code"), 16),
                )
            )
        add_identifiers(patient, ids)


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def record_json(patient: Patient) -> dict:
    rec = record_of(patient)
    return {
        "record": {
            name: (_iso(getattr(rec, name)) if kind == "date" else getattr(rec, name)) if rec else None
            for name, (kind, _) in RECORD_FIELDS.items()
        },
        "insurance_details": {k: v for k, v in insurance_of(patient).as_dict().items() if k != "note"},
        "allergies": [
            {
                "agent": a.agent,
                "agent_class": a.agent_class,
                "reaction": a.reaction,
                "severity": a.severity,
                "source": a.source,
            }
            for a in patient.allergies  # type: ignore[attr-defined]
        ],
        "implants": [{"description": i.description, "mr_safety": i.mr_safety} for i in patient.implants],  # type: ignore[attr-defined]
        "lab_results": [
            {
                "test": r.test,
                "value": r.value,
                "unit": r.unit,
                "code": r.code,
                "observed_at": _iso(r.observed_at),
                "source": r.source,
            }
            for r in patient.lab_results  # type: ignore[attr-defined]
        ],
        "other_identifiers": [
            {"value": i.value, "type_code": i.type_code, "authority": i.authority}
            for i in patient.identifiers  # type: ignore[attr-defined]
        ],
    }
