"""Per-request helpers shared by blueprints: the database session and the settings."""
from __future__ import annotations

from flask import current_app, g
from sqlalchemy.orm import Session

from .config import Config


def db() -> Session:
    """The request's session; blueprints commit explicitly, teardown closes it."""
    if "db" not in g:
        g.db = current_app.extensions["ris_sessions"]()
    return g.db


def get_or_404(model, row_id: int, what: str, field: str = "id"):
    """The row of `model` with primary key `row_id`, or a 404 naming what was asked for."""
    from .errors import ApiError

    row = db().get(model, row_id)
    if row is None:
        raise ApiError(404, f"no {what} with this id", field=field)
    return row


def settings() -> Config:
    return current_app.config["RIS"]
