"""step change: every edit of a waiting exam's order and every move in time or room, with
who made it, beside the status history

Revision ID: 0020_step_change
Revises: 0019_history_actor
Create Date: 2026-12-01 03:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0020_step_change"
down_revision = "0019_history_actor"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "step_change",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("step_id", sa.Integer(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("what", sa.String(length=255), nullable=False),
        sa.Column("start_before", sa.DateTime(timezone=True), nullable=True),
        sa.Column("start_after", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["step_id"],
            ["scheduled_procedure_step.id"],
            name=op.f("fk_step_change_step_id_scheduled_procedure_step"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_step_change")),
    )
    op.create_index(op.f("ix_step_change_step_id"), "step_change", ["step_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_step_change_step_id"), table_name="step_change")
    op.drop_table("step_change")
