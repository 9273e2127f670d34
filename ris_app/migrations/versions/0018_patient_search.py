"""patient search: search keys beside each patient (names folded without accents or case,
the MRN as compared, the phone's digits), indexed with the birth date, and filled for the
patients already there

Revision ID: 0018_patient_search
Revises: 0017_analytics
Create Date: 2026-11-30 21:30:00
"""

import sqlalchemy as sa
from alembic import op

from ris_app.registration.keys import mrn_key, name_key, phone_digits

revision = "0018_patient_search"
down_revision = "0017_analytics"
branch_labels = None
depends_on = None

COLUMNS = (("name_key", 400), ("mrn_key", 64), ("phone_digits", 64))
BATCH = 1000


def _backfill() -> None:
    """The keys of the patients already registered, computed by the same functions the
    model uses on every write (Python: SQL has no portable way to strip accents)."""
    conn = op.get_bind()
    patient = sa.table(
        "patient",
        sa.column("id", sa.Integer),
        sa.column("mrn", sa.String),
        sa.column("family_name", sa.String),
        sa.column("given_name", sa.String),
        sa.column("middle_name", sa.String),
        sa.column("phone", sa.String),
        *(sa.column(name, sa.String) for name, _ in COLUMNS),
    )
    last = 0
    while True:
        rows = conn.execute(
            sa.select(patient.c.id, patient.c.mrn, patient.c.family_name, patient.c.given_name)
            .add_columns(patient.c.middle_name, patient.c.phone)
            .where(patient.c.id > last)
            .order_by(patient.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        conn.execute(
            patient.update()
            .where(patient.c.id == sa.bindparam("row_id"))
            .values(name_key=sa.bindparam("nk"), mrn_key=sa.bindparam("mk"), phone_digits=sa.bindparam("pd")),
            [
                {
                    "row_id": row.id,
                    "nk": name_key(row.family_name, row.given_name or "", row.middle_name or ""),
                    "mk": mrn_key(row.mrn),
                    "pd": phone_digits(row.phone or ""),
                }
                for row in rows
            ],
        )
        last = rows[-1].id


def upgrade() -> None:
    # Plain ADD COLUMN on both databases (as 0014): a batch copy of patient would be
    # refused by the foreign keys that point at it.
    for name, length in COLUMNS:
        op.add_column("patient", sa.Column(name, sa.String(length=length), nullable=False, server_default=""))
    _backfill()
    for name, _ in COLUMNS:
        op.create_index(op.f(f"ix_patient_{name}"), "patient", [name])
    op.create_index(op.f("ix_patient_birth_date"), "patient", ["birth_date"])


def downgrade() -> None:
    op.drop_index(op.f("ix_patient_birth_date"), table_name="patient")
    for name, _ in reversed(COLUMNS):
        op.drop_index(op.f(f"ix_patient_{name}"), table_name="patient")
        # SQLite (3.35+) drops a plain column in place; a batch copy of patient would be
        # refused by the foreign keys that point at it.
        if op.get_bind().dialect.name == "sqlite":
            op.execute(f"ALTER TABLE patient DROP COLUMN {name}")
        else:
            op.drop_column("patient", name)
