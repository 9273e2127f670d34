"""reminders: the outbox of messages to patients, a patient's language and opt-outs, a
step's confirmation by the patient

Revision ID: 0014_reminders
Revises: 0013_resources
Create Date: 2026-11-30 17:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_reminders"
down_revision = "0013_resources"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reminder",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("step_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("appointment_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lead_hours", sa.Integer(), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("recipient", sa.String(length=255), nullable=False),
        sa.Column("error", sa.String(length=500), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["step_id"], ["scheduled_procedure_step.id"], name=op.f("fk_reminder_step_id_scheduled_procedure_step")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reminder")),
    )
    op.create_index(op.f("ix_reminder_step_id"), "reminder", ["step_id"])
    op.create_index("ix_reminder_state_due", "reminder", ["state", "due_at"])
    # Plain ADD COLUMN on both databases: a batch copy of these tables would be refused by
    # the foreign keys that point at them (SQLite).
    op.add_column("patient", sa.Column("language", sa.String(length=8), nullable=False, server_default=""))
    op.add_column("patient", sa.Column("notify_email", sa.Boolean(), nullable=False, server_default=sa.true()))
    op.add_column("patient", sa.Column("notify_sms", sa.Boolean(), nullable=False, server_default=sa.true()))
    op.add_column("scheduled_procedure_step", sa.Column("patient_confirmed_at", sa.DateTime(timezone=True)))


def _drop_column(table: str, column: str) -> None:
    # SQLite (3.35+) drops a plain column in place; a batch copy of patient or
    # scheduled_procedure_step would be refused by the foreign keys that point at them.
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    else:
        op.drop_column(table, column)


def downgrade() -> None:
    op.drop_index("ix_reminder_state_due", table_name="reminder")
    op.drop_index(op.f("ix_reminder_step_id"), table_name="reminder")
    op.drop_table("reminder")
    _drop_column("scheduled_procedure_step", "patient_confirmed_at")
    for column in ("notify_sms", "notify_email", "language"):
        _drop_column("patient", column)
