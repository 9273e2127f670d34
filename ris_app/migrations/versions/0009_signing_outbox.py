"""signing outbox: what a signature causes is queued as sync-worker tasks in the signing transaction

orthanc_task gains the report version a task is for, the HL7 destination of an ORU task,
and the time of its next attempt (back-off). Signed versions whose publishing had not
succeeded before this revision are not queued here: the report page's "Retry now" queues
them.

Revision ID: 0009_signing_outbox
Revises: 0008_write_safety
Create Date: 2026-11-30 15:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_signing_outbox"
down_revision = "0008_write_safety"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orthanc_task") as batch:
        batch.add_column(sa.Column("report_version_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("destination", sa.String(length=64), nullable=False, server_default=""))
        batch.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_foreign_key(
            batch.f("fk_orthanc_task_report_version_id_report_version"), "report_version", ["report_version_id"], ["id"]
        )
        batch.create_index(batch.f("ix_orthanc_task_report_version_id"), ["report_version_id"], unique=False)


def downgrade() -> None:
    op.execute("DELETE FROM orthanc_task WHERE report_version_id IS NOT NULL")
    with op.batch_alter_table("orthanc_task") as batch:
        batch.drop_index(batch.f("ix_orthanc_task_report_version_id"))
        batch.drop_constraint(batch.f("fk_orthanc_task_report_version_id_report_version"), type_="foreignkey")
        batch.drop_column("next_attempt_at")
        batch.drop_column("destination")
        batch.drop_column("report_version_id")
