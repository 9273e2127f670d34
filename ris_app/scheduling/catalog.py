"""The default procedure catalog a new site starts from (edit through the API or pages)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ris_app.billing.catalog import seed_default_billing
from ris_app.model import ProcedureCode

DEFAULT_PROCEDURES: tuple[tuple[str, str, str, int], ...] = (
    # code, description, modality, minutes
    ("CTHEAD", "CT head without contrast", "CT", 15),
    ("CTCHEST", "CT chest with contrast", "CT", 20),
    ("CTABD", "CT abdomen and pelvis", "CT", 20),
    ("MRBRAIN", "MR brain", "MR", 40),
    ("MRKNEE", "MR knee", "MR", 30),
    ("XRCHEST", "XR chest 2 views", "CR", 10),
    ("USABD", "US abdomen", "US", 20),
    ("MGSCREEN", "Screening mammography", "MG", 15),
)

# The contrast agent class of the default procedures that give one (safety checks).
DEFAULT_CONTRAST = {"CTCHEST": "iodinated"}


def seed_default_catalog(session: Session) -> int:
    """Add the default procedures when the catalog is empty, and the billing rows of the
    default procedures that have none (ris_app/billing/catalog.py). Returns how many
    procedures were added."""
    added = 0
    if session.scalar(select(ProcedureCode.id).limit(1)) is None:
        for code, description, modality, minutes in DEFAULT_PROCEDURES:
            session.add(
                ProcedureCode(
                    code=code,
                    description=description,
                    modality=modality,
                    default_duration_minutes=minutes,
                    contrast=DEFAULT_CONTRAST.get(code, ""),
                )
            )
        added = len(DEFAULT_PROCEDURES)
        session.flush()
    seed_default_billing(session)
    return added
