"""audit trail: audit_event, append-only (database triggers refuse update and delete, but
the sealer's one-time setting of the chain columns)

Revision ID: 0010_audit
Revises: 0009_signing_outbox
Create Date: 2026-11-30 15:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_audit"
down_revision = "0009_signing_outbox"
branch_labels = None
depends_on = None

# What an event says; once written, none of these may change (the chain columns are set
# once, from NULL, by the sealer).
CONTENT = (
    "id",
    "at",
    "actor",
    "actor_kind",
    "address",
    "action",
    "resource",
    "patient_mrn",
    "accession",
    "outcome",
    "detail",
)


def upgrade() -> None:
    op.create_table(
        "audit_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("actor_kind", sa.String(length=16), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=48), nullable=False),
        sa.Column("resource", sa.String(length=255), nullable=False),
        sa.Column("patient_mrn", sa.String(length=64), nullable=False),
        sa.Column("accession", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.String(length=512), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_event")),
        sa.UniqueConstraint("seq", name=op.f("uq_audit_event_seq")),
    )
    op.create_index(op.f("ix_audit_event_at"), "audit_event", ["at"])
    op.create_index(op.f("ix_audit_event_action"), "audit_event", ["action"])
    op.create_index(op.f("ix_audit_event_patient_mrn"), "audit_event", ["patient_mrn"])
    op.create_index("ix_audit_event_actor_at", "audit_event", ["actor", "at"])
    op.create_index("ix_audit_event_unsealed", "audit_event", ["seq", "id"])
    if op.get_bind().dialect.name == "postgresql":
        same = " AND ".join(f"NEW.{c} IS NOT DISTINCT FROM OLD.{c}" for c in CONTENT)
        op.execute(
            f"""
            CREATE FUNCTION audit_event_append_only() RETURNS trigger AS $$
            BEGIN
              IF TG_OP = 'UPDATE' AND OLD.seq IS NULL AND NEW.seq IS NOT NULL AND {same} THEN
                RETURN NEW;  -- the sealer chains a row, once
              END IF;
              RAISE EXCEPTION 'audit_event is append-only (%% refused)', TG_OP;
            END $$ LANGUAGE plpgsql
            """.replace("%%", "%")
        )
        op.execute(
            "CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_event "
            "FOR EACH ROW EXECUTE FUNCTION audit_event_append_only()"
        )
        op.execute(
            "CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_event "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_event_append_only()"
        )
    else:
        changed = " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in CONTENT)
        op.execute(
            "CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_event "
            "BEGIN SELECT RAISE(ABORT, 'audit_event is append-only (DELETE refused)'); END"
        )
        op.execute(
            "CREATE TRIGGER audit_event_seal_only BEFORE UPDATE ON audit_event "
            f"WHEN OLD.seq IS NOT NULL OR NEW.seq IS NULL OR {changed} "
            "BEGIN SELECT RAISE(ABORT, 'audit_event is append-only (UPDATE refused)'); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_event_no_truncate ON audit_event")
        op.execute("DROP TRIGGER audit_event_append_only ON audit_event")
        op.execute("DROP FUNCTION audit_event_append_only()")
    else:
        op.execute("DROP TRIGGER audit_event_seal_only")
        op.execute("DROP TRIGGER audit_event_no_delete")
    op.drop_table("audit_event")
