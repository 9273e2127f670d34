"""The record as the scanner console shows it: the values of the worklist attributes
PatientWeight, PatientSize, Allergies, MedicalAlerts, PregnancyStatus, SpecialNeeds and
OtherPatientIDsSequence (ris_app/worklist/attributes.py names where each goes).

LO values hold at most 64 characters (bytes, as scanners count them) and no backslash (the value separator): every line
is cut to fit, and several lines are several values.
"""

from __future__ import annotations

from ris_app.clock import to_site
from ris_app.model import Patient, ScheduledProcedureStep
from ris_app.model.registration import PREGNANCY_STATUSES
from ris_app.registration import safety
from ris_app.registration.record import latest_lab, record_of


def _cut(line: str) -> str:
    # 63 bytes: the padding to an even length must not push the last value past 64.
    line = line.replace("\\", "/")
    while len(line.encode()) > 63:
        line = line[:-1]
    return line


def _lo(lines: list[str]) -> str:
    return "\\".join(_cut(line) for line in lines if line)


def _ds(value: float | None, digits: int) -> str:
    return f"{value:.{digits}f}".rstrip("0").rstrip(".") if value else ""


def weight(patient: Patient) -> str:
    rec = record_of(patient)
    return _ds(rec.weight_kg, 1) if rec else ""


def size(patient: Patient) -> str:
    """PatientSize is in metres (DS)."""
    rec = record_of(patient)
    return _ds(rec.height_m, 2) if rec else ""


def allergies(patient: Patient) -> str:
    lines = []
    for a in patient.allergies:  # type: ignore[attr-defined]
        what = f"{a.agent_class} contrast ({a.agent})" if a.agent_class in ("iodinated", "gadolinium") else a.agent
        detail = ", ".join(x for x in (a.reaction, a.severity if a.severity != "unknown" else "") if x)
        lines.append(f"{what}: {detail}" if detail else what)
    return _lo(lines)


def medical_alerts(step: ScheduledProcedureStep) -> str:
    """Implants, the last renal results, and the safety check's outcome (hold, warnings,
    overrides) of this step."""
    patient = step.requested_procedure.order.patient
    lines = [f"Implant: {i.description} (MR {i.mr_safety})" for i in patient.implants]  # type: ignore[attr-defined]
    for test, label in (("egfr", "eGFR"), ("creatinine", "Creatinine")):
        r = latest_lab(patient, test)
        if r is not None:
            lines.append(f"{label} {r.value:g} {r.unit} ({to_site(r.observed_at):%Y-%m-%d})".replace("  ", " "))
    lines += safety.alerts(step)
    return _lo(lines)


def pregnancy_status(patient: Patient) -> int | None:
    """PregnancyStatus (US): 1 not pregnant, 2 possibly, 3 definitely, 4 unknown."""
    rec = record_of(patient)
    return PREGNANCY_STATUSES.get(rec.pregnancy_status) if rec else None


def special_needs(patient: Patient) -> str:
    rec = record_of(patient)
    if rec is None:
        return ""
    return _lo([rec.mobility, f"Interpreter: {rec.interpreter}" if rec.interpreter else ""])


def other_ids(patient: Patient) -> list[tuple[str, str, str]]:
    """(PatientID, IssuerOfPatientID, TypeOfPatientID) of the patient's other identifiers."""
    return [(i.value, i.authority, "TEXT") for i in patient.identifiers]  # type: ignore[attr-defined]
