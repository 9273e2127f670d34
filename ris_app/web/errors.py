"""Domain errors become HTTP answers here, and only here."""

from __future__ import annotations

from flask import Flask, jsonify, render_template, request
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import HTTPException

from ris_app.errors import Conflict, DomainError, Gone, Invalid, NotFound, Unavailable, Unsafe, error_body
from ris_app.web import write_conflict

HTTP_STATUS: dict[type[DomainError], int] = {
    Invalid: 400,
    NotFound: 404,
    Conflict: 409,
    Gone: 410,
    Unavailable: 503,
    Unsafe: 422,
}
CODE_OF_STATUS = {
    400: "invalid",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    410: "gone",
    422: "unsafe",
    503: "unavailable",
}


class ApiError(DomainError):
    """An error of the web layer itself (authentication, a malformed request) with its
    HTTP status; domain code raises the errors of `ris_app.errors` instead."""

    def __init__(self, status: int, message: str, *, field: str | None = None, code: str | None = None) -> None:
        super().__init__(message, field=field, code=code or CODE_OF_STATUS.get(status, "error"))
        self.status = status


def http_status(err: DomainError) -> int:
    if isinstance(err, ApiError):
        return err.status
    for cls in type(err).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 400


def error_response(status: int, message: str, field: str | None = None, code: str | None = None):
    return jsonify(error_body(code or CODE_OF_STATUS.get(status, "error"), message, field)), status


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def _domain_error(err: DomainError):
        return error_response(http_status(err), err.message, err.field, err.code)

    @app.errorhandler(IntegrityError)
    @app.errorhandler(StaleDataError)
    def _write_conflict(exc: IntegrityError | StaleDataError):
        # Raised by a flush before the view's commit: the same 409 as web.commit gives.
        err = write_conflict(exc)
        if request.path.startswith("/api/"):
            return error_response(409, err.message, err.field, err.code)
        return render_template("message.html", title="Changed meanwhile", text=err.message), 409

    @app.errorhandler(HTTPException)
    def _http_error(err: HTTPException):
        if request.path.startswith("/api/"):
            return error_response(err.code or 500, err.description or err.name, getattr(err, "field", None))
        return err
