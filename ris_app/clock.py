"""The one clock and the site's time zone.

Every time the RIS stores is timezone-aware UTC: `utcnow()` makes them, and the columns
(`ris_app.db.UtcDateTime`) refuse a naive one. People, scanners and the EHR read and write
the department's wall-clock time, in the site zone (`ORTHANC_RIS_TIMEZONE`, by default the
server's zone). Each edge converts on purpose with the functions here: `from_site` for
what comes in (a form, an API value without an offset, a DICOM or HL7 time), `to_site` for
what goes out (pages, DICOM, HL7, the scheduled start in the API), `site_today` and
`site_day_bounds` for "today" and "that day" as the department means them.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

if TYPE_CHECKING:
    from ris_app.config import Config

LOCALTIME = Path("/etc/localtime")


def utcnow() -> datetime:
    """The one clock of the RIS: now, timezone-aware, in UTC."""
    return datetime.now(UTC)


# --------------------------------------------------------------------------- zones
def server_zone() -> tzinfo:
    """This server's zone: $TZ when it names an IANA zone, else /etc/localtime (UTC when
    there is none, as the C library does)."""
    name = os.environ.get("TZ", "").lstrip(":")
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass  # a POSIX rule such as EST5EDT,M3.2.0,M11.1.0: fall back to the system zone
    try:
        target = str(LOCALTIME.resolve())
        if "/zoneinfo/" in target:
            try:
                return ZoneInfo(target.split("/zoneinfo/", 1)[1])
            except (ZoneInfoNotFoundError, ValueError):
                pass
        with LOCALTIME.open("rb") as f:
            return ZoneInfo.from_file(f, key="localtime")
    except (OSError, ValueError):
        return UTC


def zone_named(name: str) -> tzinfo:
    """The IANA zone `name` (Europe/Paris, America/New_York); empty means the server's zone.
    An unknown name is a ValueError naming the setting (refused at start, not per request)."""
    name = name.strip()
    if not name:
        return server_zone()
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"ORTHANC_RIS_TIMEZONE: {name!r} is not an IANA time zone name such as Europe/Paris") from None


def zone_name(zone: tzinfo) -> str:
    """A zone's name for people and logs (its IANA key when it has one)."""
    return getattr(zone, "key", None) or str(zone)


_site: tzinfo | None = None


def set_site_zone(zone: tzinfo | str | None) -> None:
    """Use this site zone in this process (the app factory, each part's entry point, tests);
    None reads $ORTHANC_RIS_TIMEZONE again on next use."""
    global _site
    _site = zone_named(zone) if isinstance(zone, str) else zone


def site_zone(cfg: Config | None = None) -> tzinfo:
    """The department's zone: that of `cfg`, else this process's (set by set_site_zone,
    or read once from $ORTHANC_RIS_TIMEZONE)."""
    global _site
    if cfg is not None:
        return zone_named(cfg.timezone)
    if _site is None:
        _site = zone_named(os.environ.get("ORTHANC_RIS_TIMEZONE", ""))
    return _site


# --------------------------------------------------------------------------- the edges
def as_utc(dt: datetime) -> datetime:
    """An aware datetime in UTC. A naive one is a programming error: nobody said which
    zone it is in (use from_site for department wall-clock time)."""
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"naive datetime {dt.isoformat()}: say its zone (clock.from_site for site time)")
    return dt.astimezone(UTC)


def to_site(dt: datetime, zone: tzinfo | None = None) -> datetime:
    """A stored (aware) time as the department's wall-clock time, aware in the site zone."""
    return as_utc(dt).astimezone(zone or site_zone())


def from_site(local: datetime, zone: tzinfo | None = None) -> datetime:
    """Department wall-clock time (naive) as aware UTC. An aware value already says where
    it is and is only converted. In the hour a clock skips or repeats, the offset before
    the change is taken (fold=0)."""
    if local.tzinfo is not None and local.utcoffset() is not None:
        return local.astimezone(UTC)
    return local.replace(tzinfo=zone or site_zone()).astimezone(UTC)


def site_now(zone: tzinfo | None = None) -> datetime:
    return utcnow().astimezone(zone or site_zone())


def site_today(zone: tzinfo | None = None) -> date:
    """Today as the department means it (not the server's, not UTC's)."""
    return site_now(zone).date()


def site_day_bounds(day: date, zone: tzinfo | None = None) -> tuple[datetime, datetime]:
    """The UTC instants [start, end) of one site day: local midnight to the next local
    midnight (23 or 25 hours on the days the clocks change)."""
    zone = zone or site_zone()
    start = from_site(datetime.combine(day, time.min), zone)
    end = from_site(datetime.combine(day + timedelta(days=1), time.min), zone)
    return start, end


def utc_offset(dt: datetime) -> str:
    """The offset of an aware time as DICOM TimezoneOffsetFromUTC and HL7 DTM write it:
    +0100, -0500, +0530."""
    minutes = int(dt.utcoffset().total_seconds() // 60)  # type: ignore[union-attr]
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}{mins:02d}"


# --------------------------------------------------------------------------- how people read a time
# The one way the RIS writes a time for a person (pages, PDF, messages to patients): ISO
# date, 24-hour clock, seconds only where a page needs them. A style names what is shown,
# so that every page writes the same thing for the same instant.
TIME_STYLES = {
    "minutes": "%Y-%m-%d %H:%M",
    "seconds": "%Y-%m-%d %H:%M:%S",
    "date": "%Y-%m-%d",
    "time": "%H:%M",
    "time_seconds": "%H:%M:%S",
}
LABELLED = frozenset({"minutes", "seconds"})  # an instant: its text names the zone


def zone_abbreviation(local: datetime) -> str:
    """The zone as a reader sees it next to a time: CET, CEST, EST, UTC, or the offset
    (+0530) for a zone without a customary abbreviation."""
    return local.tzname() or utc_offset(local)


def site_text(dt: datetime, style: str = "minutes", zone: tzinfo | None = None) -> str:
    """A stored time as people read it: "2026-11-30 11:10 CET" (minutes), with seconds
    ("seconds"), the site date only ("date"), or the time of day only ("time",
    "time_seconds") where the column or page names the zone."""
    local = to_site(dt, zone)
    text = local.strftime(TIME_STYLES[style])
    return f"{text} {zone_abbreviation(local)}" if style in LABELLED else text


__all__ = [
    "LABELLED",
    "TIME_STYLES",
    "UTC",
    "as_utc",
    "from_site",
    "server_zone",
    "set_site_zone",
    "site_day_bounds",
    "site_now",
    "site_text",
    "site_today",
    "site_zone",
    "to_site",
    "utc_offset",
    "utcnow",
    "zone_abbreviation",
    "zone_name",
    "zone_named",
]
