"""A correction (StudyCorrection) as a person reads it: what was done, and each field that
changed as label, old value -> new value, instead of the raw before/after records."""

from __future__ import annotations

from ris_app.model import StudyCorrection
from ris_app.scheduling.names import readable

# What each correction did, as the inbox says it.
ACTIONS = {
    "link": "study linked to an order",
    "unlink": "link undone",
    "patient_update": "patient details changed",
    "merge": "patients merged",
    "coerce": "study tags corrected",
}
# The fields a correction records (DICOM keywords and the RIS's own), labelled.
LABELS = {
    "PatientID": "MRN",
    "PatientName": "Name",
    "PatientBirthDate": "Birth date",
    "PatientSex": "Sex",
    "AccessionNumber": "Accession number",
    "order": "Order",
    "link_method": "Linked by",
    "step_status": "Exam status",
    "merged_mrn": "Merged MRN",
    "survivor_mrn": "Kept MRN",
    "orders": "Orders moved",
}


def _value(key: str, value) -> str:
    if value is None or value == "" or value == []:
        return "—"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    value = str(value)
    if key == "PatientName":
        return readable(value) or value
    if key == "PatientBirthDate" and len(value) == 8 and value.isdigit():
        return f"{value[:4]}-{value[4:6]}-{value[6:]}"
    if key == "step_status":
        return value.lower()
    return value


def changes(correction: StudyCorrection) -> list[tuple[str, str, str]]:
    """(label, old, new) of each field whose value differs, in the order LABELS lists them
    (fields it does not know come last, by their own name)."""
    before, after = correction.before or {}, correction.after or {}
    keys = [k for k in LABELS if k in before or k in after]
    keys += sorted((set(before) | set(after)) - set(LABELS))
    rows = []
    for key in keys:
        old, new = _value(key, before.get(key)), _value(key, after.get(key))
        if old != new:
            rows.append((LABELS.get(key, key), old, new))
    return rows


def action_text(correction: StudyCorrection) -> str:
    return ACTIONS.get(correction.action, correction.action.replace("_", " "))
