"""registration: the clinical record for safe imaging (allergies, renal results, implants,
pregnancy, body measures, needs), structured insurance, other patient identifiers, the
pre-authorisation of orders, the safety check of each step, the catalog's contrast class

Revision ID: 0016_registration
Revises: 0015_billing
Create Date: 2026-11-30 18:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0016_registration"
down_revision = "0015_billing"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def _patient_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["patient_id"], ["patient.id"], name=op.f(f"fk_{table}_patient_id_patient"), ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "patient_record",
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("pregnancy_status", sa.String(length=20), nullable=False),
        sa.Column("pregnancy_recorded_on", sa.Date(), nullable=True),
        sa.Column("weight_kg", sa.Float(), nullable=True),
        sa.Column("height_m", sa.Float(), nullable=True),
        sa.Column("measured_on", sa.Date(), nullable=True),
        sa.Column("mobility", sa.String(length=64), nullable=False),
        sa.Column("interpreter", sa.String(length=64), nullable=False),
        sa.Column("payer", sa.String(length=128), nullable=False),
        sa.Column("plan", sa.String(length=128), nullable=False),
        sa.Column("member_number", sa.String(length=64), nullable=False),
        sa.Column("group_number", sa.String(length=64), nullable=False),
        sa.Column("subscriber", sa.String(length=128), nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        _patient_fk("patient_record"),
        sa.PrimaryKeyConstraint("patient_id", name=op.f("pk_patient_record")),
    )
    op.create_table(
        "patient_allergy",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("agent", sa.String(length=128), nullable=False),
        sa.Column("agent_class", sa.String(length=32), nullable=False),
        sa.Column("reaction", sa.String(length=128), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("recorded_at", TZ, nullable=False),
        _patient_fk("patient_allergy"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patient_allergy")),
    )
    op.create_index(op.f("ix_patient_allergy_patient_id"), "patient_allergy", ["patient_id"])
    op.create_table(
        "lab_result",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("test", sa.String(length=16), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("unit", sa.String(length=32), nullable=False),
        sa.Column("observed_at", TZ, nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("recorded_at", TZ, nullable=False),
        _patient_fk("lab_result"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lab_result")),
    )
    op.create_index(op.f("ix_lab_result_patient_id"), "lab_result", ["patient_id"])
    op.create_table(
        "patient_implant",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("description", sa.String(length=128), nullable=False),
        sa.Column("mr_safety", sa.String(length=16), nullable=False),
        sa.Column("recorded_at", TZ, nullable=False),
        _patient_fk("patient_implant"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patient_implant")),
    )
    op.create_index(op.f("ix_patient_implant_patient_id"), "patient_implant", ["patient_id"])
    op.create_table(
        "patient_identifier",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("value", sa.String(length=64), nullable=False),
        sa.Column("type_code", sa.String(length=16), nullable=False),
        sa.Column("authority", sa.String(length=64), nullable=False),
        _patient_fk("patient_identifier"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patient_identifier")),
        sa.UniqueConstraint("patient_id", "value", "type_code", "authority", name=op.f("uq_patient_identifier")),
    )
    op.create_index(op.f("ix_patient_identifier_patient_id"), "patient_identifier", ["patient_id"])
    op.create_index(op.f("ix_patient_identifier_value"), "patient_identifier", ["value"])
    op.create_table(
        "order_preauth",
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"], ["imaging_order.id"], name=op.f("fk_order_preauth_order_id_imaging_order"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_order_preauth")),
    )
    op.create_table(
        "step_safety",
        sa.Column("step_id", sa.Integer(), nullable=False),
        sa.Column("findings", sa.JSON(), nullable=False),
        sa.Column("checked_at", TZ, nullable=False),
        sa.Column("checked_on", sa.String(length=16), nullable=False),
        sa.Column("hold", sa.Boolean(), nullable=False),
        sa.Column("hold_reason", sa.String(length=512), nullable=False),
        sa.Column("override_rules", sa.String(length=255), nullable=False),
        sa.Column("override_by", sa.String(length=64), nullable=False),
        sa.Column("override_at", TZ, nullable=True),
        sa.Column("override_reason", sa.String(length=512), nullable=False),
        sa.ForeignKeyConstraint(
            ["step_id"],
            ["scheduled_procedure_step.id"],
            name=op.f("fk_step_safety_step_id_scheduled_procedure_step"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("step_id", name=op.f("pk_step_safety")),
    )
    op.create_index(op.f("ix_step_safety_hold"), "step_safety", ["hold"])
    # Plain ADD COLUMN: a batch copy of procedure_code would be refused by the foreign keys
    # that point at it (SQLite).
    op.add_column("procedure_code", sa.Column("contrast", sa.String(length=16), nullable=False, server_default=""))
    # The default catalog's contrast procedure, where a site still has it as seeded.
    op.execute(
        "UPDATE procedure_code SET contrast = 'iodinated' WHERE code = 'CTCHEST' AND description = 'CT chest with contrast'"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE procedure_code DROP COLUMN contrast")
    else:
        op.drop_column("procedure_code", "contrast")
    for table in (
        "step_safety",
        "order_preauth",
        "patient_identifier",
        "patient_implant",
        "lab_result",
        "patient_allergy",
        "patient_record",
    ):
        op.drop_table(table)
