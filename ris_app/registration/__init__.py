"""Registration that keeps patients safe: the clinical record (allergies, renal results,
pregnancy, implants, body measures, needs), insurance as data, the patient's other
identifiers, likely duplicates, and the safety rules checked before an exam.

`insurance_of(patient)` is the one accessor of a patient's insurance.
"""

from __future__ import annotations

from ris_app.registration.record import Insurance, insurance_of

__all__ = ["Insurance", "insurance_of"]
