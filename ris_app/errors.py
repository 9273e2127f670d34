"""One error type and one JSON error shape for the whole API."""
from __future__ import annotations

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException


class ApiError(Exception):
    """An error the client can act on: `field` names the offending input when there is one."""

    def __init__(self, status: int, message: str, *, field: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.code = code or {400: "invalid", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                             409: "conflict", 503: "unavailable"}.get(status, "error")


def error_response(status: int, message: str, field: str | None = None, code: str | None = None):
    body: dict[str, object] = {"code": code or ApiError(status, message).code, "message": message}
    if field:
        body["field"] = field
    return jsonify({"error": body}), status


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(err: ApiError):
        return error_response(err.status, err.message, err.field, err.code)

    @app.errorhandler(HTTPException)
    def _http_error(err: HTTPException):
        from flask import request

        if request.path.startswith("/api/"):
            return error_response(err.code or 500, err.description or err.name)
        return err
