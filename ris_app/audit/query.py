"""Reading the audit trail: the one place its filters live, for the API, the admin page,
the CSV export and a patient's "who accessed this record" list.

A filter comes from query parameters (`AuditFilter.from_args`, which refuses what it
cannot read with `Invalid` naming the parameter). `from` and `to` are days as the
department means them (the site zone): each becomes the UTC instants of that site day
(clock.site_day_bounds) here, at the edge, and the query compares stored UTC times.
Events come newest first (by id: the order they were written in); a page goes on from a
cursor, the id of the last event of the page before.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from datetime import date, tzinfo

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from ris_app.clock import site_day_bounds
from ris_app.errors import Invalid
from ris_app.model.audit import AuditEvent

DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
# What a reader sees of an event, in this order (the API adds `id` and `seq`).
COLUMNS = (
    "at",
    "actor",
    "actor_kind",
    "address",
    "action",
    "outcome",
    "patient_mrn",
    "accession",
    "resource",
    "detail",
)
# Action names are lower-case dotted words (patient.read, login.failed).
ACTION = re.compile(r"[a-z0-9_]+(\.[a-z0-9_]+)*")
TEXT_LIMITS = {"mrn": 64, "user": 128, "action": 48}


@dataclass(frozen=True)
class AuditFilter:
    """Which events: all given conditions hold. `action` without a dot is a family
    (`report` matches report.read, report.sign, ...; `login` matches login.failed too)."""

    mrn: str = ""
    user: str = ""
    action: str = ""
    day_from: date | None = None
    day_to: date | None = None

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> AuditFilter:
        """The filter of query parameters mrn, user, action, from, to (YYYY-MM-DD)."""
        text = {}
        for name, most in TEXT_LIMITS.items():
            value = (args.get(name) or "").strip()
            if len(value) > most or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
                raise Invalid(f"must be at most {most} printable characters", field=name)
            text[name] = value
        if text["action"] and not ACTION.fullmatch(text["action"]):
            raise Invalid("must be an action name such as patient.read, or its first word (patient)", field="action")
        days = {name: _day(args, name) for name in ("from", "to")}
        if days["from"] and days["to"] and days["from"] > days["to"]:
            raise Invalid("must not be after `to`", field="from")
        return cls(day_from=days["from"], day_to=days["to"], **text)

    def conditions(self, zone: tzinfo | None = None) -> list[ColumnElement[bool]]:
        """The WHERE clauses of this filter; days are read in `zone` (default: the site's)."""
        where: list[ColumnElement[bool]] = []
        if self.mrn:
            where.append(AuditEvent.patient_mrn == self.mrn)
        if self.user:
            where.append(AuditEvent.actor == self.user)
        if self.action:
            exact = AuditEvent.action == self.action
            family = AuditEvent.action.startswith(self.action + ".", autoescape=True)
            where.append(exact if "." in self.action else or_(exact, family))
        if self.day_from:
            where.append(AuditEvent.at >= site_day_bounds(self.day_from, zone)[0])
        if self.day_to:
            where.append(AuditEvent.at < site_day_bounds(self.day_to, zone)[1])
        return where

    def as_args(self) -> dict[str, str]:
        """The filter as query parameters (for links: the next page, the CSV export)."""
        names = {"day_from": "from", "day_to": "to"}
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value:
                out[names.get(f.name, f.name)] = value.isoformat() if isinstance(value, date) else value
        return out

    def describe(self) -> str:
        """The filter for an audit event's `detail`: names of the conditions only, the
        MRN goes in the event's own field."""
        args = self.as_args()
        args.pop("mrn", None)
        return " ".join(f"{k}={v}" for k, v in sorted(args.items()))


def _day(args: Mapping[str, str], name: str) -> date | None:
    value = (args.get(name) or "").strip()
    if not value:
        return None
    try:
        day = date.fromisoformat(value) if len(value) == 10 else None
    except ValueError:
        day = None
    # Years outside 1900..9000 are typing slips, and near the ends of the calendar a day's
    # bounds in UTC would not exist.
    return day if day is not None and 1900 <= day.year <= 9000 else _bad_day(name)


def _bad_day(name: str):
    raise Invalid("must be a date as YYYY-MM-DD (a day in the site's time zone)", field=name)


def read_limit(value: str | None, default: int = DEFAULT_LIMIT) -> int:
    """The page size asked for: 1..MAX_LIMIT."""
    if value is None or value == "":
        return default
    if not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise Invalid(f"must be an integer from 1 to {MAX_LIMIT}", field="limit")
    return int(value)


def read_cursor(value: str | None) -> int | None:
    """The cursor a previous page answered (`next_cursor`), or None for the first page."""
    if value is None or value == "":
        return None
    if not value.isdigit() or len(value) > 18:
        raise Invalid("must be the next_cursor of a previous answer", field="cursor")
    return int(value)


@dataclass
class AuditPage:
    events: list[AuditEvent]
    next_cursor: int | None  # None: this was the last page


def search(session: Session, filt: AuditFilter, *, limit: int = DEFAULT_LIMIT, cursor: int | None = None) -> AuditPage:
    """One page of matching events, newest first."""
    stmt = select(AuditEvent).where(*filt.conditions())
    if cursor is not None:
        stmt = stmt.where(AuditEvent.id < cursor)
    rows = list(session.scalars(stmt.order_by(AuditEvent.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return AuditPage(rows, rows[-1].id if more and rows else None)


def upto_now(session: Session) -> int:
    """A cursor that leaves out whatever is written from now on (the export's own event)."""
    return (session.scalar(select(func.max(AuditEvent.id))) or 0) + 1


def every(
    session: Session, filt: AuditFilter, cursor: int | None = None, batch: int = MAX_LIMIT
) -> Iterator[AuditEvent]:
    """All matching events older than `cursor` (None: all), newest first, read a batch at a
    time (the CSV export)."""
    while True:
        page = search(session, filt, limit=batch, cursor=cursor)
        yield from page.events
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def patient_access(session: Session, mrn: str, limit: int = 50) -> AuditPage:
    """Who accessed the record of the patient `mrn`: its newest events."""
    return search(session, AuditFilter(mrn=mrn), limit=limit)
