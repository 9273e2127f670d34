"""utc times: every stored time is timezone-aware UTC; scheduled starts move from site-local wall time to UTC

Before: audit times (created_at, signed_at, ...) were naive UTC, and
scheduled_procedure_step.start_datetime was naive department wall-clock time. After: all
are UTC (PostgreSQL: `timestamp with time zone`; SQLite has no such type and keeps UTC
text, read back aware by ris_app.db.UtcDateTime).

The start times are rewritten in Python with the site zone (ORTHANC_RIS_TIMEZONE, default
the server's zone, as `orthanc-ris migrate` passes it) on both databases: one conversion
rule, zoneinfo's, the same the RIS applies to new times, and no need for PostgreSQL to know
the zone by name (a server zone read from /etc/localtime may have none).

Revision ID: 0006_utc_times
Revises: 0004_sync
"""

from datetime import UTC

import sqlalchemy as sa
from alembic import context, op

from ris_app import clock

revision = "0006_utc_times"
down_revision = "0004_sync"
branch_labels = None
depends_on = None

# Every DateTime column at 0004_sync. Their values are UTC, but start_datetime's.
COLUMNS = {
    "hl7_message": ("received_at", "processed_at"),
    "hl7_outbox": ("created_at", "next_attempt_at", "sent_at"),
    "patient": ("created_at", "updated_at"),
    "ris_user": ("created_at",),
    "sync_state": ("updated_at",),
    "worklist_query_log": ("received_at",),
    "imaging_order": ("created_at", "updated_at"),
    "study": ("first_received_at", "last_received_at", "stable_at", "deleted_at"),
    "report": ("created_at", "updated_at", "finalized_at"),
    "scheduled_procedure_step": ("start_datetime", "status_changed_at"),
    "study_correction": ("created_at",),
    "critical_result": ("communicated_at", "recorded_at"),
    "orthanc_task": ("created_at", "done_at"),
    "performed_procedure_step": ("started_at", "ended_at", "created_at", "updated_at"),
    "report_version": ("created_at", "updated_at", "preliminary_at", "signed_at"),
    "step_status_change": ("changed_at",),
}
NULLABLE = {
    ("hl7_message", "processed_at"),
    ("hl7_outbox", "sent_at"),
    ("study", "stable_at"),
    ("study", "deleted_at"),
    ("report", "finalized_at"),
    ("performed_procedure_step", "started_at"),
    ("performed_procedure_step", "ended_at"),
    ("orthanc_task", "done_at"),
    ("report_version", "preliminary_at"),
    ("report_version", "signed_at"),
}
BATCH = 1000


def _site_zone():
    return context.config.attributes.get("site_zone") or clock.site_zone()


def _set_column_types(aware: bool) -> None:
    """PostgreSQL only: timestamp <-> timestamp with time zone, the values taken as UTC."""
    old, new = sa.DateTime(timezone=not aware), sa.DateTime(timezone=aware)
    for table, columns in COLUMNS.items():
        for column in columns:
            op.alter_column(
                table,
                column,
                type_=new,
                existing_type=old,
                existing_nullable=(table, column) in NULLABLE,
                postgresql_using=f"{column} AT TIME ZONE 'UTC'",
            )


def _rewrite_starts(convert) -> None:
    """Replace each scheduled start's wall time (naive) by convert(it), in batches."""
    bind = op.get_bind()
    aware = bind.dialect.name != "sqlite"
    steps = sa.table(
        "scheduled_procedure_step",
        sa.column("id", sa.Integer),
        sa.column("start_datetime", sa.DateTime(timezone=aware)),
    )
    last = 0
    while True:
        rows = bind.execute(
            sa.select(steps.c.id, steps.c.start_datetime).where(steps.c.id > last).order_by(steps.c.id).limit(BATCH)
        ).all()
        if not rows:
            return
        updates = []
        for step_id, value in rows:
            wall = value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo is not None else value
            new = convert(wall)
            if new != wall:  # nothing to write on a site in UTC
                updates.append({"b_id": step_id, "b_start": new.replace(tzinfo=UTC) if aware else new})
        if updates:
            bind.execute(
                steps.update().where(steps.c.id == sa.bindparam("b_id")).values(start_datetime=sa.bindparam("b_start")),
                updates,
            )
        last = rows[-1][0]


def upgrade() -> None:
    zone = _site_zone()
    if op.get_bind().dialect.name == "postgresql":
        _set_column_types(aware=True)
    # Site wall-clock time -> UTC wall time.
    _rewrite_starts(lambda wall: clock.from_site(wall, zone).replace(tzinfo=None))


def downgrade() -> None:
    zone = _site_zone()
    _rewrite_starts(lambda wall: clock.to_site(wall.replace(tzinfo=UTC), zone).replace(tzinfo=None))
    if op.get_bind().dialect.name == "postgresql":
        _set_column_types(aware=False)
