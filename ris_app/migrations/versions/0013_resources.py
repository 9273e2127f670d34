"""front-desk resources: station opening hours, blocks, the procedures each station does;
procedure preparation text; the booked end of every step and its clash flag

Revision ID: 0013_resources
Revises: 0012_share_links
Create Date: 2026-11-30 17:00:00
"""

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

revision = "0013_resources"
down_revision = "0012_share_links"
branch_labels = None
depends_on = None

# The length of a step without a procedure code (frontdesk.booking.DEFAULT_MINUTES;
# repeated here because a migration must not change when the code does).
DEFAULT_MINUTES = 15
BATCH = 1000


def _backfill_step_ends(bind) -> None:
    """Every existing step gets its booked end: start plus its procedure's catalog duration.
    Done in Python so the date arithmetic is the same on SQLite and PostgreSQL."""
    rows = bind.execute(
        sa.text(
            "SELECT s.id, s.start_datetime, p.default_duration_minutes FROM scheduled_procedure_step s "
            "JOIN requested_procedure r ON r.id = s.requested_procedure_id "
            "LEFT JOIN procedure_code p ON p.id = r.procedure_code_id"
        )
    ).all()
    update = sa.text("UPDATE scheduled_procedure_step SET end_datetime = :end WHERE id = :id")
    params = []
    for step_id, stored, minutes in rows:
        # SQLite keeps the UTC wall time as text
        start = datetime.fromisoformat(stored) if isinstance(stored, str) else stored
        end = start + timedelta(minutes=minutes or DEFAULT_MINUTES)
        if bind.dialect.name == "sqlite":
            end = end.replace(tzinfo=None)
        elif end.tzinfo is None:
            end = end.replace(tzinfo=UTC)
        params.append({"id": step_id, "end": end})
        if len(params) >= BATCH:
            bind.execute(update, params)
            params = []
    if params:
        bind.execute(update, params)


def upgrade() -> None:
    op.create_table(
        "station_hours",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("station_id", sa.Integer(), nullable=False),
        sa.Column("weekday", sa.SmallInteger(), nullable=False),
        sa.Column("opens", sa.Time(), nullable=False),
        sa.Column("closes", sa.Time(), nullable=False),
        sa.ForeignKeyConstraint(
            ["station_id"], ["station.id"], name=op.f("fk_station_hours_station_id_station"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_station_hours")),
    )
    op.create_index(op.f("ix_station_hours_station_id"), "station_hours", ["station_id"])
    op.create_table(
        "station_block",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("station_id", sa.Integer(), nullable=False),
        sa.Column("start_datetime", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_datetime", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["station_id"], ["station.id"], name=op.f("fk_station_block_station_id_station"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_station_block")),
    )
    op.create_index("ix_station_block_station_start", "station_block", ["station_id", "start_datetime"])
    op.create_table(
        "station_procedure",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("station_id", sa.Integer(), nullable=False),
        sa.Column("procedure_code_id", sa.Integer(), nullable=False),
        sa.Column("duration_minutes", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["station_id"], ["station.id"], name=op.f("fk_station_procedure_station_id_station"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["procedure_code_id"],
            ["procedure_code.id"],
            name=op.f("fk_station_procedure_procedure_code_id_procedure_code"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_station_procedure")),
        sa.UniqueConstraint("station_id", "procedure_code_id", name="uq_station_procedure_pair"),
    )
    op.create_index(op.f("ix_station_procedure_station_id"), "station_procedure", ["station_id"])
    op.create_index(op.f("ix_station_procedure_procedure_code_id"), "station_procedure", ["procedure_code_id"])
    with op.batch_alter_table("procedure_code") as batch:
        batch.add_column(sa.Column("preparation", sa.String(length=2000), nullable=False, server_default=""))
    with op.batch_alter_table("scheduled_procedure_step") as batch:
        batch.add_column(sa.Column("end_datetime", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("booking_flag", sa.String(length=16), nullable=False, server_default=""))
        batch.add_column(sa.Column("booking_clash_with", sa.String(length=16), nullable=False, server_default=""))
    op.create_index(
        "ix_scheduled_procedure_step_station_start", "scheduled_procedure_step", ["station_aet", "start_datetime"]
    )
    _backfill_step_ends(op.get_bind())


def downgrade() -> None:
    op.drop_index("ix_scheduled_procedure_step_station_start", table_name="scheduled_procedure_step")
    with op.batch_alter_table("scheduled_procedure_step") as batch:
        batch.drop_column("booking_clash_with")
        batch.drop_column("booking_flag")
        batch.drop_column("end_datetime")
    with op.batch_alter_table("procedure_code") as batch:
        batch.drop_column("preparation")
    op.drop_table("station_procedure")
    op.drop_table("station_hours")
    op.drop_table("station_block")
