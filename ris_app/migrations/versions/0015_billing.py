"""billing: billable catalog rows and prices, charges, an order's diagnosis codes and the
codes an MPPS reports as performed

Revision ID: 0015_billing
Revises: 0014_reminders
Create Date: 2026-11-30 18:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0015_billing"
down_revision = "0014_reminders"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "billing_item",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("procedure_code_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("code_system", sa.String(length=16), nullable=False),
        sa.Column("description", sa.String(length=128), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("performed_code", sa.String(length=16), nullable=False, server_default=""),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["procedure_code_id"], ["procedure_code.id"], name=op.f("fk_billing_item_procedure_code_id_procedure_code")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_item")),
        sa.UniqueConstraint("procedure_code_id", "kind", "code", "performed_code", name="uq_billing_item_row"),
    )
    op.create_index(op.f("ix_billing_item_procedure_code_id"), "billing_item", ["procedure_code_id"])
    op.create_table(
        "billing_price",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("amount_cents", sa.Integer(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_by", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["billing_item.id"], name=op.f("fk_billing_price_item_id_billing_item")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_price")),
    )
    op.create_index(op.f("ix_billing_price_item_id"), "billing_price", ["item_id"])
    op.create_table(
        "charge",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("step_id", sa.Integer(), nullable=False),
        sa.Column("accession_number", sa.String(length=16), nullable=False),
        sa.Column("capture_key", sa.String(length=64), nullable=True),
        sa.Column("line", sa.String(length=8), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("code_system", sa.String(length=16), nullable=False),
        sa.Column("modifier", sa.String(length=8), nullable=False),
        sa.Column("description", sa.String(length=128), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price_cents", sa.Integer(), nullable=False),
        sa.Column("total_cents", sa.Integer(), nullable=False),
        sa.Column("performed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("service_day", sa.Date(), nullable=False),
        sa.Column("performing_station", sa.String(length=16), nullable=False),
        sa.Column("performing_physician", sa.String(length=128), nullable=False),
        sa.Column("ordering_physician", sa.String(length=128), nullable=False),
        sa.Column("diagnosis_codes", sa.String(length=255), nullable=False),
        sa.Column("insurance", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_reason", sa.String(length=512), nullable=False),
        sa.Column("corrects_id", sa.Integer(), nullable=True),
        sa.Column("control_id", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_by", sa.String(length=64), nullable=False),
        sa.Column("status_changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["step_id"], ["scheduled_procedure_step.id"], name=op.f("fk_charge_step_id_scheduled_procedure_step")
        ),
        sa.ForeignKeyConstraint(["item_id"], ["billing_item.id"], name=op.f("fk_charge_item_id_billing_item")),
        sa.ForeignKeyConstraint(["corrects_id"], ["charge.id"], name=op.f("fk_charge_corrects_id_charge")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_charge")),
        sa.UniqueConstraint("capture_key", name=op.f("uq_charge_capture_key")),
    )
    op.create_index(op.f("ix_charge_step_id"), "charge", ["step_id"])
    op.create_index(op.f("ix_charge_accession_number"), "charge", ["accession_number"])
    op.create_index(op.f("ix_charge_status"), "charge", ["status"])
    op.create_index(op.f("ix_charge_control_id"), "charge", ["control_id"])
    op.create_index("ix_charge_day_status", "charge", ["service_day", "status"])
    # Plain ADD COLUMN on both databases (a batch copy would be refused by foreign keys).
    op.add_column(
        "imaging_order", sa.Column("diagnosis_codes", sa.String(length=255), nullable=False, server_default="")
    )
    op.add_column("performed_procedure_step", sa.Column("performed_codes", sa.JSON(), nullable=True))


def _drop_column(table: str, column: str) -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    else:
        op.drop_column(table, column)


def downgrade() -> None:
    _drop_column("performed_procedure_step", "performed_codes")
    _drop_column("imaging_order", "diagnosis_codes")
    op.drop_index("ix_charge_day_status", table_name="charge")
    for name in ("control_id", "status", "accession_number", "step_id"):
        op.drop_index(op.f(f"ix_charge_{name}"), table_name="charge")
    op.drop_table("charge")
    op.drop_index(op.f("ix_billing_price_item_id"), table_name="billing_price")
    op.drop_table("billing_price")
    op.drop_index(op.f("ix_billing_item_procedure_code_id"), table_name="billing_item")
    op.drop_table("billing_item")
