"""The exam's history, beside its status: who made each change and through what. Every
status move is a StepStatusChange (record_change); every other change of a waiting exam,
an edit of its order or a move in time or room, is a StepChange (record_edit). Both name
who, from the actor the session writes for (db.set_actor)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from ris_app.db import current_actor
from ris_app.model import ScheduledProcedureStep, StepChange, StepStatusChange
from ris_app.scheduling.states import SPSStatus

# Actor contexts (db.set_actor) that a history row names otherwise than as they read.
HISTORY_ACTORS = {"system:no-show": "no-show sweep", "api:orthanc-plugin": "plugin"}


def history_actor(context: str, source: str) -> str:
    """Who a history row names: the page user's name, "api:<token>", or the part of the
    system ("plugin", "hl7:EHR", "mpps:CT1", "no-show sweep"); a writer that set no actor
    (the sync worker's reconciliation) is named by its source."""
    if context in HISTORY_ACTORS:
        return HISTORY_ACTORS[context]
    kind, _, name = context.partition(":")
    if kind == "page" and name:
        return name
    return context or source


def record_change(
    session: Session, step: ScheduledProcedureStep, before: str | None, target: SPSStatus, source: str, reason: str = ""
) -> StepStatusChange:
    """The one place a history row is written: what moved, through what, who and why."""
    row = StepStatusChange(
        from_status=before,
        to_status=target,
        source=source,
        actor=history_actor(current_actor(session), source)[:64],
        reason=reason[:255],
    )
    step.history.append(row)
    return row


def record_edit(
    session: Session,
    step: ScheduledProcedureStep,
    kind: str,
    source: str,
    what: str = "",
    *,
    start_before: datetime | None = None,
) -> StepChange:
    """The one place a change other than a status is written beside the history: an edit
    ("edit", `what` changed) or a move ("move", from `start_before` to the step's start)."""
    row = StepChange(
        kind=kind,
        source=source,
        actor=history_actor(current_actor(session), source)[:64],
        what=what[:255],
        start_before=start_before,
        start_after=step.start_datetime if kind == "move" else None,
    )
    step.changes.append(row)
    return row


def room_change(before: str, after: str) -> str:
    return f"room {before or 'any'} → {after or 'any'}" if before != after else ""
