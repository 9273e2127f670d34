"""`GET /api/analytics/*`: the dashboards' figures for integrators' own reporting, admin
tokens only (department-wide numbers: who may see them is the admin's call)."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from ris_app.analytics.forecast import forecast
from ris_app.analytics.stats import Filter
from ris_app.analytics.turnaround import turnaround
from ris_app.analytics.utilisation import utilisation
from ris_app.errors import Invalid
from ris_app.web import db
from ris_app.web.access import ADMIN, api_roles

bp = Blueprint("analytics_api", __name__, url_prefix="/api/analytics")


@bp.get("/turnaround")
@api_roles(*ADMIN)
def get_turnaround():
    """Turnaround per stage (count, median and p90 in minutes) and by week.

    `from` and `to` are site days, both included (default: the last 28 days); orders
    placed in them count. A stage runs from the latest earlier stage the exam has.
    ---
    get:
      tags: [analytics]
      parameters:
        - {name: from, in: query, required: false, schema: {type: string, format: date}}
        - {name: to, in: query, required: false, schema: {type: string, format: date}}
        - {name: modality, in: query, required: false, schema: {type: string, maxLength: 16}}
        - {name: priority, in: query, required: false, schema: {type: string, maxLength: 16}}
        - {name: station_aet, in: query, required: false, schema: {type: string, maxLength: 16}}
        - {name: referring, in: query, required: false, schema: {type: string, maxLength: 64}}
      responses:
        200:
          description: Per stage and per week
          content:
            application/json:
              schema:
                type: object
                required: [from, to, stages, weeks]
                properties:
                  from: {type: string, format: date}
                  to: {type: string, format: date}
                  stages:
                    type: array
                    items:
                      type: object
                      properties:
                        stage: {type: string}
                        count: {type: integer}
                        median: {type: number, nullable: true}
                        p90: {type: number, nullable: true}
                  weeks: {type: array, items: {type: object}}
    """
    return jsonify(turnaround(db(), Filter.from_args(request.args)))


@bp.get("/utilisation")
@api_roles(*ADMIN)
def get_utilisation():
    """Open, booked and used minutes per room and per hour of the week (site time).
    ---
    get:
      tags: [analytics]
      parameters:
        - {name: from, in: query, required: false, schema: {type: string, format: date}}
        - {name: to, in: query, required: false, schema: {type: string, format: date}}
        - {name: station_aet, in: query, required: false, schema: {type: string, maxLength: 16}}
        - {name: modality, in: query, required: false, schema: {type: string, maxLength: 16}}
      responses:
        200:
          description: Per room and per hour of the week
          content:
            application/json:
              schema:
                type: object
                required: [from, to, rooms, hours]
                properties:
                  from: {type: string, format: date}
                  to: {type: string, format: date}
                  rooms:
                    type: array
                    items:
                      type: object
                      properties:
                        station_aet: {type: string}
                        modality: {type: string}
                        open_minutes: {type: number}
                        booked_minutes: {type: number}
                        used_minutes: {type: number}
                        booked_pct: {type: number, nullable: true}
                        used_pct: {type: number, nullable: true}
                  hours: {type: array, items: {type: object}}
    """
    return jsonify(utilisation(db(), Filter.from_args(request.args)))


@bp.get("/forecast")
@api_roles(*ADMIN)
def get_forecast():
    """Expected exams per day of one modality for the next 4 weeks, against capacity.

    `mape` is the model's error on the last 2 weeks of history held out, `baseline_mape`
    the seasonal-naive forecast's ("same as last week"), both in percent (null: too little
    history).
    ---
    get:
      tags: [analytics]
      parameters:
        - {name: modality, in: query, required: true, schema: {type: string, minLength: 1, maxLength: 16}}
      responses:
        200:
          description: The forecast
          content:
            application/json:
              schema:
                type: object
                required: [modality, days, mape, baseline_mape]
                properties:
                  modality: {type: string}
                  history_days: {type: integer}
                  days:
                    type: array
                    items:
                      type: object
                      required: [date, expected, capacity]
                      properties:
                        date: {type: string, format: date}
                        expected: {type: number}
                        capacity: {type: integer}
                        over_capacity: {type: boolean}
                        holiday: {type: boolean}
                  mape: {type: number, nullable: true}
                  baseline_mape: {type: number, nullable: true}
    """
    modality = (request.args.get("modality") or "").strip().upper()[:16]
    if not modality:
        raise Invalid("is required", field="modality")
    return jsonify(forecast(db(), modality))
