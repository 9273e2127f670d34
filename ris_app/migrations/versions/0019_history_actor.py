"""history actor: every status change of a step names who made it (a user, a token, or
a part of the system) and, for a cancel, why; an order's notes (the order page's edit)

Revision ID: 0019_history_actor
Revises: 0017_analytics
Create Date: 2026-11-30 21:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0019_history_actor"
down_revision = "0017_analytics"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("step_status_change", sa.Column("actor", sa.String(64), nullable=False, server_default=""))
    op.add_column("step_status_change", sa.Column("reason", sa.String(255), nullable=False, server_default=""))
    op.add_column("imaging_order", sa.Column("notes", sa.String(1024), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("imaging_order") as batch:
        batch.drop_column("notes")
    with op.batch_alter_table("step_status_change") as batch:
        batch.drop_column("reason")
        batch.drop_column("actor")
