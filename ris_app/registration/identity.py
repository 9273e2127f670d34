"""Which of the identifiers an EHR sends is the MRN (PID-3 in HL7, CX repetitions).

Feeds list national, insurance or other sites' numbers beside the MRN, in any order. The
MRN is the repetition whose identifier type code (CX-5) is one of the MRN type codes
(MR by default), preferring the configured assigning authority (CX-4); a bare ID with
no type code is the MRN when no repetition is typed MR. The others are kept as the
patient's other identifiers. A message whose only identifiers are typed as something
else (an SSN alone) names no MRN: refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from ris_app.errors import Invalid


@dataclass(frozen=True)
class Identifier:
    value: str
    authority: str = ""
    type_code: str = ""


def choose_mrn(
    identifiers: list[Identifier], type_codes: tuple[str, ...] = ("MR",), authority: str = ""
) -> tuple[Identifier, list[Identifier]]:
    """(the MRN, the other identifiers). Raises Invalid (field mrn) when none is the MRN."""
    ids = [i for i in identifiers if i.value]
    typed = [i for i in ids if i.type_code.upper() in type_codes]
    if authority:
        typed = [i for i in typed if i.authority == authority] or typed
    if typed:
        mrn = typed[0]
    else:
        bare = [i for i in ids if not i.type_code]
        if not bare:
            raise Invalid(
                "no identifier is the MRN: every one is typed as something else "
                f"({', '.join(sorted({i.type_code for i in ids})) or 'none'}; the MRN is typed "
                f"{'/'.join(type_codes)} or sent bare)",
                field="mrn",
                code="no_mrn",
            )
        mrn = bare[0]
    return mrn, [i for i in ids if i is not mrn]
