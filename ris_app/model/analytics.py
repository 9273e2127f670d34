"""Indexes the analytics dashboards read by (migration 0017_analytics): each one turns a
dashboard's date range into an index range instead of a scan of the whole table."""

from __future__ import annotations

from sqlalchemy import Index

from ris_app.model.hl7 import Hl7Outbox
from ris_app.model.scheduling import Order, ScheduledProcedureStep
from ris_app.model.tracking import OrthancTask, Study

# name -> columns (the table is the columns')
INDEXES = (
    Index("ix_imaging_order_created_at", Order.created_at),  # turnaround: orders placed in the days
    Index(  # forecast: one modality's bookings per day
        "ix_scheduled_procedure_step_modality_start",
        ScheduledProcedureStep.modality,
        ScheduledProcedureStep.start_datetime,
    ),
    Index("ix_study_first_received_at", Study.first_received_at),  # backlog, sync health
    Index("ix_hl7_outbox_created_at", Hl7Outbox.created_at),  # HL7 health
    Index("ix_orthanc_task_created_at", OrthancTask.created_at),  # sync health
)
