"""The dashboards, one per theme: each turns its query's numbers into charts and the
tables beside them (the same tables are the CSV export). One table, THEMES, names them
for the pages, the navigation and the CSV routes."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from markupsafe import Markup
from sqlalchemy.orm import Session

from ris_app.analytics import charts
from ris_app.analytics.backlog import AGE_BUCKETS, backlog
from ris_app.analytics.durations import durations
from ris_app.analytics.forecast import forecast
from ris_app.analytics.health import SERIES, health
from ris_app.analytics.rates import rates
from ris_app.analytics.stats import Filter
from ris_app.analytics.turnaround import turnaround
from ris_app.analytics.utilisation import WEEKDAYS, utilisation
from ris_app.audit.csv_export import safe_cell


@dataclass
class Table:
    caption: str
    columns: list[str]
    rows: list[list]
    adopt: bool = False  # durations: a button per row to adopt the proposal


@dataclass
class Board:
    charts: list[Markup] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    note: str = ""


def _table(caption: str, rows: list[dict], **kw) -> Table:
    columns = list(rows[0]) if rows else []
    return Table(caption, columns, [[r[c] for c in columns] for r in rows], **kw)


def _hours(x: float | None) -> float | None:
    return None if x is None else round(x / 60.0, 1)


def turnaround_board(session: Session, f: Filter, _targets) -> Board:
    data = turnaround(session, f)
    stages = data["stages"]
    b = Board(
        note="Exams not signed yet count only in the stages they reached: the last weeks' totals "
        "look shorter until their slowest reports are signed."
    )
    b.charts.append(
        charts.bars(
            "Time spent in each stage (hours)",
            [s["stage"] for s in stages],
            {"median": [_hours(s["median"]) for s in stages], "90th percentile": [_hours(s["p90"]) for s in stages]},
        )
    )
    weeks = data["weeks"]
    b.charts.append(
        charts.lines(
            "Order to signed report, by week (hours)",
            [w["week"] for w in weeks],
            {"median": [_hours(w["median"]) for w in weeks], "90th percentile": [_hours(w["p90"]) for w in weeks]},
        )
    )
    b.tables += [
        _table("Per stage (minutes from the stage before)", stages),
        _table("Order to signed, by week (minutes)", weeks),
    ]
    return b


def utilisation_board(session: Session, f: Filter, _targets) -> Board:
    data = utilisation(session, f)
    rooms, hours = data["rooms"], data["hours"]
    b = Board()
    b.charts.append(
        charts.bars(
            "Booked and used share of open time per room (%)",
            [r["station_aet"] for r in rooms],
            {"booked": [r["booked_pct"] for r in rooms], "used": [r["used_pct"] for r in rooms]},
        )
    )
    shown = sorted({h["hour"] for h in hours if h["open_minutes"]}) or list(range(8, 18))
    cols = [f"{h:02d}" for h in shown]
    booked = {(h["weekday"], f"{h['hour']:02d}"): h["booked_pct"] for h in hours}
    b.charts.append(charts.heat("Booked share of open time by hour of the week (%)", list(WEEKDAYS), cols, booked))
    grid = [[d, *[booked.get((d, c)) for c in cols]] for d in WEEKDAYS]
    b.tables += [
        _table("Per room (minutes)", rooms),
        Table("Booked % by hour of the week (site time)", ["weekday", *cols], grid),
        _table("Per hour of the week (minutes)", hours),
    ]
    return b


def rates_board(session: Session, f: Filter, _targets) -> Board:
    data = rates(session, f)
    weeks = data["weeks"]
    b = Board()
    b.charts.append(
        charts.lines(
            "No-shows and cancellations by week (%)",
            [w["week"] for w in weeks],
            {"no-show": [w["no_show_pct"] for w in weeks], "cancelled": [w["canceled_pct"] for w in weeks]},
        )
    )
    b.tables += [_table("By week", weeks), _table("By modality", data["modalities"])]
    return b


def backlog_board(session: Session, f: Filter, targets: Mapping[str, int]) -> Board:
    data = backlog(session, targets, modality=f.modality)
    rows = data["priorities"]
    b = Board(note="Studies with images and no signed report, by priority and time since their first image.")
    b.charts.append(
        charts.bars(
            "Unread studies by priority and age",
            [r["priority"] for r in rows],
            {label: [r[label] for r in rows] for label, _ in AGE_BUCKETS},
            stacked=True,
        )
    )
    b.tables += [_table("Unread by priority", rows), _table("Past their target (oldest first)", data["past_target"])]
    return b


def health_board(session: Session, f: Filter, _targets) -> Board:
    days = health(session, f)["days"]
    b = Board()
    labels = [d["day"] for d in days]
    every = max(1, len(labels) // 12)
    b.charts.append(
        charts.lines(
            "HL7 messages per day",
            labels,
            {n: [d[n] for d in days] for n in SERIES if n.startswith("hl7")},
            every=every,
        )
    )
    b.charts.append(
        charts.lines(
            "Sync per day", labels, {n: [d[n] for d in days] for n in SERIES if not n.startswith("hl7")}, every=every
        )
    )
    b.tables.append(_table("Per day", days))
    return b


def durations_board(session: Session, f: Filter, _targets) -> Board:
    rows = durations(session, f)["durations"]
    b = Board(note="Proposed: the 80th percentile rounded up to 5 minutes, from 10 exams on.")
    labels = [f"{r['procedure_code']} @ {r['station_aet']}" for r in rows]
    b.charts.append(
        charts.bars(
            "Exam minutes: taken vs planned",
            labels,
            {
                "median": [r["median"] for r in rows],
                "80th percentile": [r["p80"] for r in rows],
                "planned": [r["planned"] for r in rows],
            },
        )
    )
    b.tables.append(_table("Per procedure and room (minutes)", rows, adopt=True))
    return b


def forecast_board(session: Session, f: Filter, _targets) -> Board:
    data = forecast(session, f.modality or "CT")
    days = data["days"]
    b = Board(
        note=f"{data['modality']}: error on the last 2 weeks held out, Holt-Winters MAPE {data['mape']} % "
        f"vs seasonal-naive (same as last week) {data['baseline_mape']} %; {data['history_days']} days of history."
    )
    b.charts.append(
        charts.lines(
            f"Expected {data['modality']} exams per day vs capacity",
            [d["date"] for d in days],
            {"expected": [d["expected"] for d in days], "capacity": [d["capacity"] for d in days]},
            every=7,
        )
    )
    b.tables.append(_table("Next 4 weeks", days))
    return b


# theme -> (title, the board, the filters its form offers)
THEMES: dict[str, tuple[str, Callable[..., Board], tuple[str, ...]]] = {
    "turnaround": ("Turnaround", turnaround_board, ("dates", "modality", "station_aet", "priority", "referring")),
    "utilisation": ("Room utilisation", utilisation_board, ("dates", "modality", "station_aet")),
    "rates": ("No-shows and cancellations", rates_board, ("dates", "modality", "station_aet", "priority", "referring")),
    "backlog": ("Unread backlog", backlog_board, ("modality",)),
    "health": ("HL7 and sync health", health_board, ("dates",)),
    "durations": ("Learned durations", durations_board, ("dates", "modality", "station_aet")),
    "forecast": ("Forecast", forecast_board, ("modality",)),
}


def csv_text(board: Board) -> str:
    """Every table of the board, one after the other, each under its caption."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for n, table in enumerate(board.tables):
        if n:
            writer.writerow([])
        writer.writerow([safe_cell(table.caption)])
        writer.writerow(table.columns)
        writer.writerows([["" if v is None else safe_cell(str(v)) for v in row] for row in table.rows])
    return out.getvalue()
