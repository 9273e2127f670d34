"""The audit trail as CSV, for a privacy officer's spreadsheet.

Times are the site's wall-clock time with its offset (what the officer compares with the
department's day). A cell that starts with `=`, `+`, `-`, `@` (or a tab or carriage
return) is prefixed with `'`: spreadsheet programs would run it as a formula (CSV formula
injection), and every text cell here can come from outside (a user name, an AE title, a
resource path, a detail).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from datetime import date, tzinfo

from ris_app.audit.query import COLUMNS
from ris_app.clock import to_site
from ris_app.model.audit import AuditEvent

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: str) -> str:
    """The value as a spreadsheet takes it literally."""
    return "'" + value if value.startswith(FORMULA_START) else value


def row(event: AuditEvent, zone: tzinfo | None = None) -> list[str]:
    out = []
    for name in COLUMNS:
        value = getattr(event, name)
        out.append(to_site(value, zone).isoformat(timespec="seconds") if name == "at" else safe_cell(value or ""))
    return out


def csv_lines(events: Iterable[AuditEvent], zone: tzinfo | None = None) -> Iterator[str]:
    """The header, then one line per event (streamed: an export may be long)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for event in events:
        writer.writerow(row(event, zone))
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


def filename(day: date) -> str:
    return f"audit-{day.isoformat()}.csv"
