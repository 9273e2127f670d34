"""The one registry of tables: importing this package registers every table on
`Base.metadata` (Alembic, tests, the app), one module per capability.

  scheduling  patients, catalog, stations, orders, requested procedures, steps, counters
  users       page users, their roles and sessions, failed logins, API tokens
  worklist    the log of worklist queries
  tracking    studies as Orthanc holds them, MPPS, corrections, the Orthanc task queue
  reporting   report templates, reports, versions, critical results
  hl7         inbound messages and the outbox
  audit       the audit trail (append-only, hash-chained)
  sharing     second-opinion share links
  resources   station opening hours, blocks, the procedures each station does
  reminders   the outbox of messages to patients about their appointments
  billing     billable catalog rows, their prices, the charges of performed exams
  registration the clinical record for safe imaging, insurance, other IDs, safety checks
  analytics   the indexes the dashboards read by
"""

from __future__ import annotations

from ris_app.model import analytics as _analytics  # noqa: F401  (registers its indexes)
from ris_app.model.audit import AuditEvent
from ris_app.model.billing import BillingItem, BillingPrice, Charge
from ris_app.model.hl7 import Hl7Message, Hl7Outbox, InboundStatus, OutboxStatus
from ris_app.model.registration import (
    Allergy,
    Implant,
    LabResult,
    OrderPreauth,
    PatientIdentifier,
    PatientRecord,
    StepSafety,
)
from ris_app.model.reminders import Reminder
from ris_app.model.reporting import (
    ADDENDUM,
    COMMUNICATION_METHODS,
    DRAFT,
    FINAL,
    ORIGINAL,
    PRELIMINARY,
    REPORT_STATUSES,
    SECTIONS,
    CriticalResult,
    Report,
    ReportTemplate,
    ReportVersion,
)
from ris_app.model.resources import BLOCK_KINDS, StationBlock, StationHours, StationProcedure
from ris_app.model.scheduling import (
    PRIORITIES,
    SEQUENCES,
    SEXES,
    IdSequence,
    Order,
    Patient,
    ProcedureCode,
    RequestedProcedure,
    ScheduledProcedureStep,
    Station,
    StepChange,
    StepStatusChange,
)
from ris_app.model.sharing import ShareLink
from ris_app.model.tracking import (
    OrthancTask,
    PerformedProcedureStep,
    Study,
    StudyCorrection,
    SyncState,
)
from ris_app.model.users import API_ROLES, ROLES, ApiToken, LoginFailure, User, UserSession
from ris_app.model.worklist import WorklistQueryLog

__all__ = [
    "ADDENDUM",
    "API_ROLES",
    "BLOCK_KINDS",
    "COMMUNICATION_METHODS",
    "DRAFT",
    "FINAL",
    "ORIGINAL",
    "PRELIMINARY",
    "PRIORITIES",
    "REPORT_STATUSES",
    "ROLES",
    "SECTIONS",
    "SEQUENCES",
    "SEXES",
    "Allergy",
    "ApiToken",
    "AuditEvent",
    "BillingItem",
    "BillingPrice",
    "Charge",
    "CriticalResult",
    "Hl7Message",
    "Hl7Outbox",
    "IdSequence",
    "Implant",
    "InboundStatus",
    "LabResult",
    "LoginFailure",
    "Order",
    "OrderPreauth",
    "OrthancTask",
    "OutboxStatus",
    "Patient",
    "PatientIdentifier",
    "PatientRecord",
    "PerformedProcedureStep",
    "ProcedureCode",
    "Reminder",
    "Report",
    "ReportTemplate",
    "ReportVersion",
    "RequestedProcedure",
    "ScheduledProcedureStep",
    "ShareLink",
    "Station",
    "StationBlock",
    "StationHours",
    "StationProcedure",
    "StepChange",
    "StepSafety",
    "StepStatusChange",
    "Study",
    "StudyCorrection",
    "SyncState",
    "User",
    "UserSession",
    "WorklistQueryLog",
]
