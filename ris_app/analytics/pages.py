"""The analytics pages, for admins and the department's managers (the manager role: these
pages only, no patient's record): one dashboard per theme (boards.THEMES) with its
filters, its charts beside their numbers, and a CSV export; and the one-click adoption
of a learned duration into the procedure catalog (admins only: it changes the catalog)."""

from __future__ import annotations

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from ris_app.analytics.boards import THEMES, Board, csv_text
from ris_app.analytics.durations import adopt
from ris_app.analytics.stats import Filter
from ris_app.clock import site_today, site_zone, zone_name
from ris_app.errors import DomainError
from ris_app.model import PRIORITIES, ProcedureCode, Station
from ris_app.web import db, settings
from ris_app.web.auth import check_csrf, login_required

bp = Blueprint("analytics", __name__)
bp.before_request(check_csrf)


def _board(theme: str) -> tuple[Filter, Board]:
    if theme not in THEMES:
        abort(404)
    filt = Filter.from_args(request.args)
    return filt, THEMES[theme][1](db(), filt, settings().read_target_minutes)


def _choices() -> dict:
    stations = list(db().execute(select(Station.aet, Station.modality).order_by(Station.aet)))
    modalities = sorted({m for _, m in stations} | set(db().scalars(select(ProcedureCode.modality))))
    return {"stations": [a for a, _ in stations], "modalities": modalities, "priorities": PRIORITIES}


@bp.get("/analytics")
@login_required("manager")
def index():
    return redirect(url_for("analytics.dashboard", theme="turnaround"))


@bp.get("/analytics/<theme>")
@login_required("manager")
def dashboard(theme: str):
    error, filt, board = "", None, None
    try:
        filt, board = _board(theme)
    except DomainError as err:
        error = f"{err.field}: {err.message}"
    return render_template(
        "analytics.html",
        theme=theme,
        themes=THEMES,
        title=THEMES[theme][0],
        offers=THEMES[theme][2],
        filt=filt,
        args=request.args,
        board=board,
        error=error,
        zone=zone_name(site_zone()),
        **_choices(),
    ), (400 if error else 200)


@bp.get("/analytics/<theme>/export.csv")
@login_required("manager")
def dashboard_csv(theme: str):
    try:
        _, board = _board(theme)
    except DomainError as err:
        return Response(f"{err.field}: {err.message}\n", status=400, mimetype="text/plain")
    name = f"analytics-{theme}-{site_today().isoformat()}.csv"
    return Response(
        csv_text(board), mimetype="text/csv", headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


@bp.post("/analytics/durations/adopt")
@login_required("admin")
def adopt_duration():
    code = request.form.get("procedure_code", "")
    try:
        minutes = int(request.form.get("minutes", ""))
        procedure = adopt(db(), code, minutes)
    except ValueError:
        flash("minutes: must be whole minutes", "error")
    except DomainError as err:
        flash(f"{err.field}: {err.message}", "error")
    else:
        db().commit()
        flash(
            f"{procedure.code} now takes {procedure.default_duration_minutes} minutes in the catalog: new bookings use it.",
            "ok",
        )
    back = request.form.get("back", "")
    return redirect(back if back.startswith("/analytics/") else url_for("analytics.dashboard", theme="durations"))
