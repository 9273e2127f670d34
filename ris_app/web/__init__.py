"""Per-request helpers shared by blueprints: the database session and the settings."""

from __future__ import annotations

import logging

from flask import current_app, g
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ris_app.config import Config
from ris_app.errors import Conflict, NotFound

log = logging.getLogger(__name__)


def db() -> Session:
    """The request's session; blueprints commit explicitly, teardown closes it."""
    if "db" not in g:
        g.db = current_app.extensions["ris_sessions"]()
    return g.db


def commit() -> None:
    """Commit the request's session; a database constraint that refuses the write (a
    duplicate MRN or accession number sent twice at once) is a 409, not a 500."""
    try:
        db().commit()
    except IntegrityError as exc:
        db().rollback()
        log.warning("write refused by a database constraint: %s", exc.orig.__class__.__name__)
        raise Conflict("conflicts with an existing record") from None


def get_or_404(model, row_id: int, what: str, field: str = "id"):
    """The row of `model` with primary key `row_id`, or a 404 naming what was asked for."""
    row = db().get(model, row_id)
    if row is None:
        raise NotFound(f"no {what} with this id", field=field)
    return row


def settings() -> Config:
    return current_app.config["RIS"]
