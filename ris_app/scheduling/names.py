"""Person names between the RIS's fields, DICOM PN and what people read: one place.

A DICOM PN holds up to three component groups (alphabetic=ideographic=phonetic), each of
five components: family^given^middle^prefix^suffix. The RIS keeps a patient's alphabetic
components in five fields; users have a display name ("Ada Reader").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ris_app.model import Patient

COMPONENTS = ("family_name", "given_name", "middle_name", "name_prefix", "name_suffix")


def dicom_pn(family: str, given: str = "", middle: str = "", prefix: str = "", suffix: str = "") -> str:
    """A DICOM PN value from its parts, without empty trailing components."""
    parts = [family or "", given or "", middle or "", prefix or "", suffix or ""]
    while parts and not parts[-1]:
        parts.pop()
    return "^".join(parts)


def patient_pn(patient: Patient) -> str:
    """The patient's name as DICOM PatientName."""
    return dicom_pn(*(getattr(patient, c) for c in COMPONENTS))


def pn_components(pn: str) -> dict[str, str]:
    """The five components of a PN's alphabetic group, by RIS field name."""
    parts = ((pn or "").split("=")[0].split("^") + [""] * 5)[:5]
    return dict(zip(COMPONENTS, parts, strict=True))


def pn_of_display_name(full_name: str) -> str:
    """A user's display name ("Ada Reader") as a DICOM PN (Reader^Ada)."""
    parts = full_name.split()
    return f"{parts[-1]}^{' '.join(parts[:-1])}".rstrip("^") if parts else ""


def readable(pn: str | None) -> str:
    """A PN for people: "Family, Given Middle" (empty when there is no name)."""
    c = pn_components(pn or "")
    given = f"{c['given_name']} {c['middle_name']}".strip()
    return ", ".join(p for p in (c["family_name"], given) if p)
