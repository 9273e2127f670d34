"""HL7 interface: inbound message store and outbound outbox

Revision ID: 0003_hl7
Revises: 0002_worklist
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_hl7"
down_revision = "0002_worklist"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hl7_message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("peer", sa.String(length=64), nullable=False),
        sa.Column("sending_application", sa.String(length=180), nullable=False),
        sa.Column("sending_facility", sa.String(length=180), nullable=False),
        sa.Column("control_id", sa.String(length=199), nullable=False),
        sa.Column("message_type", sa.String(length=20), nullable=False),
        sa.Column("version", sa.String(length=20), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("ack_code", sa.String(length=2), nullable=False),
        sa.Column("error", sa.String(length=1024), nullable=False),
        sa.Column("error_location", sa.String(length=32), nullable=False),
        sa.Column("summary", sa.String(length=255), nullable=False),
        sa.Column("duplicate_of", sa.Integer(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("processed_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hl7_message")),
    )
    with op.batch_alter_table("hl7_message", schema=None) as batch_op:
        batch_op.create_index("ix_hl7_message_sender_control_id", ["sending_facility", "control_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_hl7_message_received_at"), ["received_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_hl7_message_status"), ["status"], unique=False)

    op.create_table(
        "hl7_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("destination", sa.String(length=64), nullable=False),
        sa.Column("message_type", sa.String(length=20), nullable=False),
        sa.Column("control_id", sa.String(length=20), nullable=False),
        sa.Column("reference", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("last_error", sa.String(length=1024), nullable=False),
        sa.Column("ack_code", sa.String(length=2), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hl7_outbox")),
        sa.UniqueConstraint("control_id", name=op.f("uq_hl7_outbox_control_id")),
    )
    with op.batch_alter_table("hl7_outbox", schema=None) as batch_op:
        batch_op.create_index("ix_hl7_outbox_due", ["status", "next_attempt_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_hl7_outbox_reference"), ["reference"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("hl7_outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_hl7_outbox_reference"))
        batch_op.drop_index("ix_hl7_outbox_due")
    op.drop_table("hl7_outbox")
    with op.batch_alter_table("hl7_message", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_hl7_message_status"))
        batch_op.drop_index(batch_op.f("ix_hl7_message_received_at"))
        batch_op.drop_index("ix_hl7_message_sender_control_id")
    op.drop_table("hl7_message")
