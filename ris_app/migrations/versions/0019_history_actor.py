"""history actor: every status change of a step names who made it (a user, a token, or
a part of the system) and, for a cancel, why; an order's notes (the order page's edit)

Revision ID: 0019_history_actor
Revises: 0018_patient_search
Create Date: 2026-11-30 21:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0019_history_actor"
down_revision = "0018_patient_search"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("step_status_change", sa.Column("actor", sa.String(64), nullable=False, server_default=""))
    op.add_column("step_status_change", sa.Column("reason", sa.String(255), nullable=False, server_default=""))
    op.add_column("imaging_order", sa.Column("notes", sa.String(1024), nullable=False, server_default=""))


def downgrade() -> None:
    # SQLite (3.35+) drops a plain column in place; a batch copy of imaging_order would be
    # refused by the foreign keys that point at it (as 0018 does for patient).
    for table, column in (
        ("imaging_order", "notes"),
        ("step_status_change", "reason"),
        ("step_status_change", "actor"),
    ):
        if op.get_bind().dialect.name == "sqlite":
            op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        else:
            op.drop_column(table, column)
