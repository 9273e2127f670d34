"""stations: optional host and port (the DICOM AE allowlist checks the caller's address)

Revision ID: 0007b_station_host
Revises: 0007_auth
Create Date: 2026-11-30 13:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007b_station_host"
down_revision = "0007_auth"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("station") as batch:
        batch.add_column(sa.Column("host", sa.String(length=45), nullable=False, server_default=""))
        batch.add_column(sa.Column("port", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("station") as batch:
        batch.drop_column("port")
        batch.drop_column("host")
