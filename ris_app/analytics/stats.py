"""Percentiles and the filter every dashboard shares.

Percentiles are computed in Python over an ordered fetch: SQLite has no percentile
function and PostgreSQL's `percentile_cont` is not portable; the dashboards fetch only
the rows of the chosen days, so sorting them here is cheap and gives the same numbers on
both databases.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta

from ris_app.clock import site_day_bounds, site_today, to_site
from ris_app.errors import Invalid

DEFAULT_DAYS = 28
MAX_DAYS = 731


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) by linear interpolation between closest ranks (numpy's
    default, Excel's PERCENTILE.INC); None for no values. `values` need not be sorted."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def by_ids(session, ids: list[int], query, chunk: int = 2000) -> dict[int, tuple]:
    """Run `query(chunk of ids)` over `ids` in chunks (bound parameters stay well under
    SQLite's limit); {first column: the other columns}."""
    out: dict[int, tuple] = {}
    for n in range(0, len(ids), chunk):
        for row in session.execute(query(ids[n : n + chunk])):
            out[row[0]] = tuple(row[1:])
    return out


def minutes(start: datetime | None, end: datetime | None) -> float | None:
    """Minutes from start to end; None if either is missing or end comes first."""
    if start is None or end is None or end < start:
        return None
    return (end - start).total_seconds() / 60.0


def summary(values: Sequence[float], high: float = 90) -> dict:
    """count, median and the `high` percentile, in minutes rounded to 0.1."""

    def r(x):
        return None if x is None else round(x, 1)

    return {"count": len(values), "median": r(percentile(values, 50)), f"p{int(high)}": r(percentile(values, high))}


def week_of(at: datetime) -> date:
    """The Monday of the site week `at` falls in: trends are by the department's weeks."""
    day = to_site(at).date()
    return day - timedelta(days=day.weekday())


def _date(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise Invalid("must be a date YYYY-MM-DD", field=name) from None


@dataclass(frozen=True)
class Filter:
    """What a dashboard looks at: site days first..last (both included), and optionally one
    modality, room (station AE title), priority and referring unit (the order's referrer)."""

    first: date
    last: date
    modality: str = ""
    station_aet: str = ""
    priority: str = ""
    referring: str = ""

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> Filter:
        last = _date(args["to"], "to") if args.get("to") else site_today()
        first = _date(args["from"], "from") if args.get("from") else last - timedelta(days=DEFAULT_DAYS - 1)
        if last < first:
            raise Invalid("ends before it starts", field="to")
        if (last - first).days >= MAX_DAYS:
            raise Invalid(f"at most {MAX_DAYS} days", field="from")
        text = {k: (args.get(k) or "").strip()[:64] for k in ("modality", "station_aet", "priority", "referring")}
        text["modality"], text["priority"] = text["modality"].upper(), text["priority"].upper()
        return cls(first=first, last=last, **text)

    @property
    def start(self) -> datetime:
        return site_day_bounds(self.first)[0]

    @property
    def end(self) -> datetime:
        return site_day_bounds(self.last)[1]

    def days(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range((self.last - self.first).days + 1)]

    def as_args(self) -> dict[str, str]:
        out = {"from": self.first.isoformat(), "to": self.last.isoformat()}
        out.update(
            {
                f.name: getattr(self, f.name)
                for f in fields(self)
                if f.name not in ("first", "last") and getattr(self, f.name)
            }
        )
        return out
