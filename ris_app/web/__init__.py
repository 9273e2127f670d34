"""Per-request helpers shared by blueprints: the database session and the settings."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from flask import current_app, g, request
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from ris_app.config import Config
from ris_app.db import begin_write, retrying, set_actor
from ris_app.errors import Conflict, NotFound, StaleVersion

log = logging.getLogger(__name__)
T = TypeVar("T")


# Requests that may write: their transaction is a writer from its first read (db.begin_write).
WRITING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def read_mostly(view):
    """Mark a POST view that reads for a while and then writes a little (the worklist
    query): its transaction begins as a reader, so concurrent queries do not take turns
    at SQLite's write lock; it must end its read (commit) before it writes."""
    view.read_mostly = True
    return view


def actor() -> str:
    """Who the request writes for: the page user or the API token (stamped as changed_by)."""
    user, caller = g.get("user"), g.get("caller")
    if user is not None:
        return f"page:{user.username}"
    if caller is not None:
        return f"api:{caller.name}"
    return "web"


def db() -> Session:
    """The request's session; blueprints commit explicitly, teardown closes it. A request
    that may write begins as a writer, so what it reads is still true when it commits."""
    if "db" not in g:
        g.db = set_actor(current_app.extensions["ris_sessions"](), actor)
        view = current_app.view_functions.get(request.endpoint or "")
        if request.method in WRITING_METHODS and not getattr(view, "read_mostly", False):
            begin_write(g.db)
    return g.db


def commit() -> None:
    """Commit the request's session; a write another writer got in first with (the same
    new MRN or accession number sent twice at once, a step changed meanwhile) is a 409,
    not a 500. The same errors raised by an earlier flush: web.errors.write_conflict."""
    try:
        db().commit()
    except (IntegrityError, StaleDataError) as exc:
        raise write_conflict(exc) from None


def write_conflict(exc: IntegrityError | StaleDataError) -> Conflict:
    """The domain error for a write the database refused because another writer got in
    first; rolls the request's session back. No parameters are logged (patient data)."""
    db().rollback()
    if isinstance(exc, StaleDataError):
        log.info("write lost a race with another writer (stale version)")
        return StaleVersion("record")
    log.warning("write refused by a database constraint: %s", exc.orig.__class__.__name__)
    return Conflict("conflicts with an existing record (sent twice at once?)", code="duplicate")


def hand_over() -> None:
    """End the request's transaction before calling work that opens its own (the HL7
    processor, reconciliation): a writing request holds SQLite's write lock from its first
    read, and the other transaction would wait for it until the busy timeout."""
    if "db" in g:
        commit()


def write_with_retry(work: Callable[[Session], T]) -> T:
    """For machine callers (the Orthanc plugin): run `work` in the request's writer
    transaction and commit; run it again when another writer got in first, instead of
    answering 409 for an event that is perfectly valid (db.retrying)."""

    def attempt() -> T:
        session = begin_write(db())
        try:
            result = work(session)
            session.commit()
            return result
        except BaseException:
            session.rollback()
            raise

    return retrying(attempt, what=f"{request.method} {request.url_rule.rule if request.url_rule else ''}")


def get_or_404(model, row_id: int, what: str, field: str = "id"):
    """The row of `model` with primary key `row_id`, or a 404 naming what was asked for."""
    row = db().get(model, row_id)
    if row is None:
        raise NotFound(f"no {what} with this id", field=field)
    return row


def settings() -> Config:
    return current_app.config["RIS"]
