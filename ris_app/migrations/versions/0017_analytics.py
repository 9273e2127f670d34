"""analytics: indexes the dashboards read by (orders by creation, steps by modality and
start, studies by first image, the HL7 outbox and Orthanc tasks by creation)

Revision ID: 0017_analytics
Revises: 0016_registration
Create Date: 2026-11-30 18:30:00
"""

from alembic import op

revision = "0017_analytics"
down_revision = "0016_registration"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_imaging_order_created_at", "imaging_order", ["created_at"]),
    ("ix_scheduled_procedure_step_modality_start", "scheduled_procedure_step", ["modality", "start_datetime"]),
    ("ix_study_first_received_at", "study", ["first_received_at"]),
    ("ix_hl7_outbox_created_at", "hl7_outbox", ["created_at"]),
    ("ix_orthanc_task_created_at", "orthanc_task", ["created_at"]),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _ in INDEXES:
        op.drop_index(name, table_name=table)
