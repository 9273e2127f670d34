"""worklist: per-station own-steps rule, log of worklist C-FINDs

Revision ID: 0002_worklist
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_worklist"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("station", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("worklist_own_steps_only", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_table(
        "worklist_query_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("calling_aet", sa.String(length=16), nullable=False),
        sa.Column("called_aet", sa.String(length=16), nullable=False),
        sa.Column("query", sa.JSON(), nullable=False),
        sa.Column("answers", sa.Integer(), nullable=False),
        sa.Column("incomplete", sa.Boolean(), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_worklist_query_log")),
    )
    with op.batch_alter_table("worklist_query_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_worklist_query_log_calling_aet"), ["calling_aet"], unique=False)
        batch_op.create_index(batch_op.f("ix_worklist_query_log_received_at"), ["received_at"], unique=False)
    op.create_index(
        "ix_scheduled_procedure_step_start_status",
        "scheduled_procedure_step",
        ["start_datetime", "status"],
        unique=False,
    )
    op.create_index("ix_patient_family_name_lower", "patient", [sa.text("lower(family_name)")], unique=False)


def downgrade() -> None:
    op.drop_index("ix_patient_family_name_lower", table_name="patient")
    op.drop_index("ix_scheduled_procedure_step_start_status", table_name="scheduled_procedure_step")
    with op.batch_alter_table("worklist_query_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_worklist_query_log_received_at"))
        batch_op.drop_index(batch_op.f("ix_worklist_query_log_calling_aet"))
    op.drop_table("worklist_query_log")
    with op.batch_alter_table("station", schema=None) as batch_op:
        batch_op.drop_column("worklist_own_steps_only")
