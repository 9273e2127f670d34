"""The clinical record from HL7: the MRN among PID-3's identifiers, allergies (AL1) and
weight and height (OBX) from ADT, renal results from the lab (ORU^R01 OBX), all read
through the field table (`mapping`) and written through ris_app.registration.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime

from ris_app.clock import utcnow
from ris_app.errors import DomainError
from ris_app.hl7 import mapping as m
from ris_app.hl7.parse import (
    DATA_TYPE_ERROR,
    Message,
    Segment,
    content_error,
)
from ris_app.hl7.reading import (
    SOURCE,
    Context,
    domain_error,
    family_of,
    field_datetime,
    identity,
    read_patient,
    required_segment,
    segments,
    upsert_patient,
)
from ris_app.model import Patient
from ris_app.registration import record
from ris_app.registration.settings import current
from ris_app.scheduling.orders import patient_changed

log = logging.getLogger(__name__)

# AL1-4 (HL7 table 0128) -> Allergy.severity
SEVERITY_IN = {"SV": "severe", "MO": "moderate", "MI": "mild", "U": "unknown", "": "unknown"}
# OBX-3 codes (LOINC, and the words local feeds send) of body measures -> record field.
MEASURES = {
    "29463-7": "weight_kg",
    "3141-9": "weight_kg",
    "WEIGHT": "weight_kg",
    "WT": "weight_kg",
    "8302-2": "height_m",
    "8306-3": "height_m",
    "HEIGHT": "height_m",
    "HT": "height_m",
}
# OBX-6 unit -> factor to the record's unit (kg, m).
UNITS = {
    "weight_kg": {"KG": 1.0, "G": 0.001, "LB": 0.45359237, "[LB_AV]": 0.45359237, "": 1.0},
    "height_m": {"M": 1.0, "CM": 0.01, "IN": 0.0254, "[IN_I]": 0.0254, "": 1.0},
}
_NUMBER = re.compile(r"^[<>=~]*\s*(\d+(?:\.\d+)?)\s*$")


def _number(value: str, loc: str) -> float:
    match = _NUMBER.match(value or "")
    if not match:
        raise content_error(DATA_TYPE_ERROR, f"{loc} is not a number", loc)
    return float(match.group(1))


def _obx_time(segs: dict[str, Segment], msg: Message, fam: str) -> datetime:
    value, loc = m.read(segs, "observation_time", fam)
    assert isinstance(value, str)
    return field_datetime(value, loc) or field_datetime(msg.msh.get(7), "MSH-7") or utcnow()


def apply_adt_clinical(ctx: Context, msg: Message, patient: Patient) -> list[str]:
    """AL1 allergies and OBX weight/height of an ADT onto the patient's record."""
    fam = family_of(msg)
    done = []
    try:
        for al1 in msg.all("AL1"):
            segs = {"AL1": al1}
            agent, _ = m.read(segs, "allergy_agent", fam)
            if not agent:
                continue
            severity, _ = m.read(segs, "allergy_severity", fam)
            reaction, _ = m.read(segs, "allergy_reaction", fam)
            record.add_allergy(
                patient,
                agent,
                reaction=reaction,
                severity=SEVERITY_IN.get(str(severity).upper(), "unknown"),
                source=f"{SOURCE}:{msg.sending_application}"[:64],
            )
            done.append("allergy")
        for obx in msg.all("OBX"):
            segs = {"OBX": obx, **segments(msg, "OBR", "MSH")}
            code, _ = m.read(segs, "observation_code", fam)
            text, _ = m.read(segs, "observation_text", fam)
            name = MEASURES.get(str(code).upper()) or MEASURES.get(str(text).upper())
            if name is None:
                continue
            value, loc = m.read(segs, "observation_value", fam)
            unit, unit_loc = m.read(segs, "observation_unit", fam)
            factor = UNITS[name].get(str(unit).upper())
            if factor is None:
                raise content_error(
                    DATA_TYPE_ERROR, f"{unit_loc}: unit {unit} is not one of kg, g, lb, m, cm, in", unit_loc
                )
            measured = _obx_time(segs, msg, fam)
            record.update_record(
                patient, {name: round(_number(str(value), loc) * factor, 3), "measured_on": measured.date()}
            )
            done.append(name.split("_")[0])
    except DomainError as exc:
        raise domain_error(exc, fam) from None
    if done:
        patient_changed(patient)  # the worklist items show the new record
    return done


def lab_results(ctx: Context, msg: Message) -> str:
    """ORU^R01: the creatinine and eGFR results (OBX-3 among the configured codes) of the
    patient in PID, stored with their observation times; other results are ignored."""
    fam = family_of(msg)
    required_segment(msg, "PID")
    fields, _ = read_patient(segments(msg, "PID"), fam)
    patient = upsert_patient(ctx, fields, identifiers=identity(msg.segment("PID"))[1])
    assert patient is not None
    cfg = current()
    tests = {**dict.fromkeys(cfg.creatinine_codes, "creatinine"), **dict.fromkeys(cfg.egfr_codes, "egfr")}
    stored = 0
    obr = msg.segment("OBR")
    for obx in msg.all("OBX"):
        segs = {"OBX": obx, **({"OBR": obr} if obr is not None else {})}
        code, _ = m.read(segs, "observation_code", fam)
        test = tests.get(str(code).upper())
        status, _ = m.read(segs, "observation_status", fam)
        if test is None or str(status).upper() in ("X", "D", "W"):
            continue
        value, loc = m.read(segs, "observation_value", fam)
        unit, _ = m.read(segs, "observation_unit", fam)
        try:
            record.add_lab_result(
                patient,
                test,
                _number(str(value), loc),
                _obx_time(segs, msg, fam),
                unit=str(unit)[:32],
                code=str(code),
                source=f"{SOURCE}:{msg.sending_application}"[:64],
            )
        except DomainError as exc:
            raise domain_error(exc, fam) from None
        stored += 1
    if stored:
        patient_changed(patient)
    return f"{stored} renal result{'s' if stored != 1 else ''} stored"
