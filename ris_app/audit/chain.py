"""The hash chain of the audit trail.

Rows are written by many processes at once, each in its own transaction, so a chain built
at insert time would make every audited transaction wait for one lock. Instead the sealer
(run by the sync worker every second, and by `orthanc-ris audit seal`) takes the rows
committed but not yet sealed, in id order, and gives each the next `seq`, the previous
row's hash and its own: SHA-256 over its fields and the previous hash. A row changed or
removed after sealing breaks the chain at that point, which `verify` reports. Until it is
sealed (about a second) a row is protected by the database triggers only.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ris_app.db import transaction
from ris_app.model.audit import AuditEvent

log = logging.getLogger(__name__)
GENESIS = "0" * 64
FIELDS = ("at", "actor", "actor_kind", "address", "action", "resource", "patient_mrn", "accession", "outcome", "detail")
BATCH = 1000


def row_hash(event: AuditEvent, seq: int, prev_hash: str) -> str:
    body = {name: getattr(event, name) for name in FIELDS}
    body["at"] = event.at.isoformat(timespec="microseconds")
    body |= {"id": event.id, "seq": seq, "prev": prev_hash}
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def seal(sessions: sessionmaker[Session]) -> int:
    """Chain every committed, unsealed row; returns how many were sealed. One sealer at a
    time: the writer transaction (SQLite) and the head row lock (PostgreSQL) see to it."""
    sealed = 0
    while True:
        with transaction(sessions) as s:
            head = s.scalars(
                select(AuditEvent).where(AuditEvent.seq.is_not(None)).order_by(AuditEvent.seq.desc()).limit(1)
            ).first()
            if head is not None and s.get_bind().dialect.name != "sqlite":
                s.execute(select(AuditEvent.id).where(AuditEvent.id == head.id).with_for_update())
            seq, prev = (head.seq, head.hash) if head is not None else (0, GENESIS)
            rows = s.scalars(
                select(AuditEvent).where(AuditEvent.seq.is_(None)).order_by(AuditEvent.id).limit(BATCH)
            ).all()
            for event in rows:
                seq += 1
                event.seq, event.prev_hash = seq, prev
                event.hash = prev = row_hash(event, seq, prev)
            sealed += len(rows)
        if len(rows) < BATCH:
            return sealed


@dataclass
class Verdict:
    checked: int = 0
    unsealed: int = 0
    broken: list[str] = field(default_factory=list)  # what is wrong, first problems first

    @property
    def ok(self) -> bool:
        return not self.broken


def verify(sessions: sessionmaker[Session], limit: int = 20) -> Verdict:
    """Recompute the chain from the first row: a changed row (its hash), a removed or
    inserted one (a gap in seq, a prev_hash that is not the previous hash)."""
    verdict = Verdict()
    prev, expected_seq = GENESIS, 1
    with transaction(sessions, write=False) as s:
        for event in s.scalars(select(AuditEvent).where(AuditEvent.seq.is_not(None)).order_by(AuditEvent.seq)):
            verdict.checked += 1
            if event.seq != expected_seq:
                verdict.broken.append(f"seq {expected_seq}..{event.seq - 1} missing (rows removed)")
            if event.prev_hash != prev:
                verdict.broken.append(f"seq {event.seq}: does not follow the row before it")
            if event.hash != row_hash(event, event.seq, event.prev_hash):
                verdict.broken.append(f"seq {event.seq} (id {event.id}): changed after it was sealed")
            prev, expected_seq = event.hash, event.seq + 1
            if len(verdict.broken) >= limit:
                break
        verdict.unsealed = len(s.scalars(select(AuditEvent.id).where(AuditEvent.seq.is_(None))).all())
    return verdict
