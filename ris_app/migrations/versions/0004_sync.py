"""image tracking: MPPS, study corrections, Orthanc task queue, sync state, patient merge

Revision ID: 0004_sync
Revises: 0005_reports
Create Date: 2026-11-28 20:59:39.608826
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_sync"
down_revision = "0005_reports"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sync_state",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_sync_state")),
    )
    op.create_table(
        "study_correction",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=True),
        sa.Column("patient_id", sa.Integer(), nullable=True),
        sa.Column("before", sa.JSON(), nullable=False),
        sa.Column("after", sa.JSON(), nullable=False),
        sa.Column("performed_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("undone_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_study_correction_patient_id_patient"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(["study_id"], ["study.id"], name=op.f("fk_study_correction_study_id_study")),
        sa.ForeignKeyConstraint(
            ["undone_by_id"], ["study_correction.id"], name=op.f("fk_study_correction_undone_by_id_study_correction")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_study_correction")),
    )
    with op.batch_alter_table("study_correction", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_study_correction_patient_id"), ["patient_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_study_correction_study_id"), ["study_id"], unique=False)

    op.create_table(
        "orthanc_task",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("replace", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("correction_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("done_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["correction_id"], ["study_correction.id"], name=op.f("fk_orthanc_task_correction_id_study_correction")
        ),
        sa.ForeignKeyConstraint(["study_id"], ["study.id"], name=op.f("fk_orthanc_task_study_id_study")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orthanc_task")),
    )
    with op.batch_alter_table("orthanc_task", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_orthanc_task_state"), ["state"], unique=False)
        batch_op.create_index(batch_op.f("ix_orthanc_task_study_id"), ["study_id"], unique=False)

    op.create_table(
        "performed_procedure_step",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sop_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("step_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("performed_station_aet", sa.String(length=16), nullable=False),
        sa.Column("study_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("accession_number", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("performed_series", sa.JSON(), nullable=True),
        sa.Column("instance_count", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["step_id"],
            ["scheduled_procedure_step.id"],
            name=op.f("fk_performed_procedure_step_step_id_scheduled_procedure_step"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_performed_procedure_step")),
        sa.UniqueConstraint("sop_instance_uid", name=op.f("uq_performed_procedure_step_sop_instance_uid")),
    )
    with op.batch_alter_table("performed_procedure_step", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_performed_procedure_step_step_id"), ["step_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_performed_procedure_step_study_instance_uid"), ["study_instance_uid"], unique=False
        )

    # Plain ADD COLUMN, not batch mode: on SQLite a batch rebuilds the table and loses the
    # expression index ix_patient_family_name_lower (0002), which reflection cannot see.
    op.add_column("study", sa.Column("patient_birth_date", sa.String(length=8), nullable=False, server_default=""))
    op.add_column("study", sa.Column("patient_sex", sa.String(length=16), nullable=False, server_default=""))
    op.add_column("study", sa.Column("station_aet", sa.String(length=16), nullable=False, server_default=""))
    if op.get_bind().dialect.name == "sqlite":  # no ALTER ... ADD CONSTRAINT: inline REFERENCES
        op.execute(
            "ALTER TABLE patient ADD COLUMN merged_into_id INTEGER "
            "CONSTRAINT fk_patient_merged_into_id_patient REFERENCES patient (id) ON DELETE SET NULL"
        )
    else:
        op.add_column("patient", sa.Column("merged_into_id", sa.Integer(), nullable=True))
        op.create_foreign_key(
            op.f("fk_patient_merged_into_id_patient"),
            "patient",
            "patient",
            ["merged_into_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    # Batch mode on SQLite rebuilds patient: recreate 0002's expression index afterwards.
    with op.batch_alter_table("study", schema=None) as batch_op:
        batch_op.drop_column("station_aet")
        batch_op.drop_column("patient_sex")
        batch_op.drop_column("patient_birth_date")

    with op.batch_alter_table("patient", schema=None) as batch_op:
        if op.get_bind().dialect.name != "sqlite":  # SQLite's inline constraint has no name to drop
            batch_op.drop_constraint(batch_op.f("fk_patient_merged_into_id_patient"), type_="foreignkey")
        batch_op.drop_column("merged_into_id")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("CREATE INDEX IF NOT EXISTS ix_patient_family_name_lower ON patient (lower(family_name))")

    with op.batch_alter_table("performed_procedure_step", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_performed_procedure_step_study_instance_uid"))
        batch_op.drop_index(batch_op.f("ix_performed_procedure_step_step_id"))

    op.drop_table("performed_procedure_step")
    with op.batch_alter_table("orthanc_task", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_orthanc_task_study_id"))
        batch_op.drop_index(batch_op.f("ix_orthanc_task_state"))

    op.drop_table("orthanc_task")
    with op.batch_alter_table("study_correction", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_study_correction_study_id"))
        batch_op.drop_index(batch_op.f("ix_study_correction_patient_id"))

    op.drop_table("study_correction")
    op.drop_table("sync_state")
