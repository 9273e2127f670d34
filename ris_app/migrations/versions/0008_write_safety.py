"""write safety: step versions, who changed a step or report last, PostgreSQL sequences
for the counters, and the key that makes an HL7 message applied only once

Revision ID: 0008_write_safety
Revises: 0007b_station_host
Create Date: 2026-11-30 15:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_write_safety"
down_revision = "0007b_station_host"
branch_labels = None
depends_on = None

# Counter name -> sequence (ris_app.model.scheduling.SEQUENCES; repeated here because a
# migration must not change when the model does).
SEQUENCES = {"accession": "ris_accession_seq", "sps": "ris_sps_seq"}


def upgrade() -> None:
    with op.batch_alter_table("scheduled_procedure_step") as batch:
        batch.add_column(sa.Column("lock_version", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("changed_by", sa.String(length=64), nullable=False, server_default=""))
    with op.batch_alter_table("report_version") as batch:
        batch.add_column(sa.Column("changed_by", sa.String(length=64), nullable=False, server_default=""))
    with op.batch_alter_table("hl7_message") as batch:
        batch.add_column(sa.Column("applied_key", sa.String(length=384), nullable=True))
        batch.create_unique_constraint("uq_hl7_message_applied_key", ["applied_key"])
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for name, seq in SEQUENCES.items():
            start = bind.execute(
                sa.text("SELECT next_value FROM id_sequence WHERE name = :name"), {"name": name}
            ).scalar()
            op.execute(f"CREATE SEQUENCE {seq} START WITH {int(start or 1)}")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for name, seq in SEQUENCES.items():
            value = bind.execute(
                sa.text(f"SELECT last_value + CASE WHEN is_called THEN 1 ELSE 0 END FROM {seq}")
            ).scalar()
            bind.execute(sa.text("DELETE FROM id_sequence WHERE name = :name"), {"name": name})
            bind.execute(
                sa.text("INSERT INTO id_sequence (name, next_value) VALUES (:name, :value)"),
                {"name": name, "value": value},
            )
            op.execute(f"DROP SEQUENCE {seq}")
    with op.batch_alter_table("hl7_message") as batch:
        batch.drop_constraint("uq_hl7_message_applied_key", type_="unique")
        batch.drop_column("applied_key")
    with op.batch_alter_table("report_version") as batch:
        batch.drop_column("changed_by")
    with op.batch_alter_table("scheduled_procedure_step") as batch:
        batch.drop_column("changed_by")
        batch.drop_column("lock_version")
