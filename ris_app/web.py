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


def settings() -> Config:
    return current_app.config["RIS"]
