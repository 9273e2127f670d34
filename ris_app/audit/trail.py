"""Recording audit events. Every part that reads or writes patient data calls `record`
(in the transaction of the change: the event and the change commit or vanish together)
or `record_read` (a read has no transaction of its own worth keeping: the event gets one,
and a failure to write it is logged loudly, never swallowed).

Events carry identifiers (MRN, accession), never names or report text; the trail is where
patient identifiers belong, the logs are not."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from ris_app.db import transaction
from ris_app.model.audit import ACTOR_KINDS, OUTCOMES, SUCCESS, AuditEvent

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Who:
    """Who acted, and from where: `kind` one of ACTOR_KINDS."""

    name: str
    kind: str = "system"
    address: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ACTOR_KINDS:
            raise ValueError(f"actor kind must be one of {ACTOR_KINDS}")


SYSTEM = Who("orthanc-ris", "system")


def record(
    session: Session,
    action: str,
    who: Who,
    *,
    outcome: str = SUCCESS,
    resource: str = "",
    mrn: str = "",
    accession: str = "",
    detail: str = "",
) -> AuditEvent:
    """Add one event to the caller's transaction."""
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}")
    event = AuditEvent(
        action=action[:48],
        actor=who.name[:128],
        actor_kind=who.kind,
        address=who.address[:64],
        outcome=outcome,
        resource=resource[:255],
        patient_mrn=(mrn or "")[:64],
        accession=(accession or "")[:16],
        detail=detail[:512],
    )
    session.add(event)
    return event


def record_read(sessions: sessionmaker[Session], action: str, who: Who, **fields) -> None:
    """Record a read (or a refusal) in a transaction of its own."""
    try:
        with transaction(sessions) as s:
            record(s, action, who, **fields)
    except Exception:
        log.exception("audit event %s could not be written", action)
        raise
