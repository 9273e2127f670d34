"""Reading untrusted JSON input: each reader names the field and the reason it refuses."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from flask import Flask, Request
from werkzeug.exceptions import BadRequest
from werkzeug.routing import IntegerConverter

from ris_app.clock import from_site
from ris_app.scheduling.fields import CONTROL
from ris_app.web.errors import ApiError

MAX_ID = 2**31 - 1  # ids are INTEGER columns: the largest PostgreSQL INTEGER (SQLite's is larger)


class PathIdTooLarge(BadRequest):
    """An id in a path no database column can hold: a 400 naming the path variable."""

    def __init__(self, field: str) -> None:
        super().__init__(f"is larger than {MAX_ID}")
        self.field = field


class BoundedIntConverter(IntegerConverter):
    """`<int:...>` in routes: an id beyond 64 bits is refused before it reaches the database
    (where the driver would raise OverflowError, a 500)."""

    field = "id"  # set to the path variable's name by `install`

    def to_python(self, value: str) -> int:
        number = super().to_python(value)
        if number > MAX_ID:
            raise PathIdTooLarge(self.field)
        return number


class RisRequest(Request):
    """JSON nested deeper than the parser's recursion limit is malformed input, not a 500."""

    def get_json(self, force: bool = False, silent: bool = False, cache: bool = True):
        try:
            return super().get_json(force=force, silent=silent, cache=cache)
        except RecursionError:
            if silent:
                return None
            raise ApiError(400, "request body is nested too deeply", field="body") from None


def install(app: Flask) -> None:
    """Put the bounded readers in place; call after every blueprint is registered."""
    app.request_class = RisRequest
    for rule in app.url_map.iter_rules():
        # Converters are made per rule and variable: name each after its variable, so the
        # refusal names the field. (_converters is Werkzeug's only map of them.)
        for name, converter in rule._converters.items():
            if isinstance(converter, BoundedIntConverter):
                converter.field = name


def json_body(request) -> dict[str, Any]:
    data = request.get_json(silent=True)
    if data is None:
        raise ApiError(400, "request body must be a JSON object", field="body")
    if not isinstance(data, dict):
        raise ApiError(400, "request body must be a JSON object", field="body")
    return data


def text(
    body: dict, name: str, *, required: bool = False, max_len: int = 64, default: str = "", forbid: str = "\\"
) -> str:
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise ApiError(400, "is required", field=name)
        return default
    if not isinstance(value, str):
        raise ApiError(400, "must be a string", field=name)
    value = value.strip()
    if required and not value:
        raise ApiError(400, "is required", field=name)
    if len(value) > max_len:
        raise ApiError(400, f"is longer than {max_len} characters", field=name)
    if CONTROL.search(value):
        raise ApiError(400, "holds a control character or an unpaired surrogate", field=name)
    bad = sorted({ch for ch in value if ch in forbid})
    if bad:
        raise ApiError(
            400,
            f"holds {' and '.join(repr(ch) for ch in bad)}, which is not allowed here (a DICOM separator)",
            field=name,
        )
    return value


def choice(body: dict, name: str, allowed: Iterable[str], *, default: str | None = None) -> str:
    allowed = tuple(allowed)
    value = body.get(name, default)
    if value is None:
        raise ApiError(400, "is required", field=name)
    if not isinstance(value, str) or value.upper() not in allowed:
        raise ApiError(400, f"must be one of {', '.join(allowed)}", field=name)
    return value.upper()


def flag(body: dict, name: str, *, default: bool) -> bool:
    """A JSON true/false (absent: `default`)."""
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise ApiError(400, "must be true or false", field=name)
    return value


def iso_date(body: dict, name: str, *, required: bool = False) -> date | None:
    value = body.get(name)
    if value in (None, ""):
        if required:
            raise ApiError(400, "is required", field=name)
        return None
    if not isinstance(value, str):
        raise ApiError(400, "must be a date as YYYY-MM-DD", field=name)
    try:
        return date.fromisoformat(value) if len(value) == 10 else _bad_date()
    except ValueError:
        raise ApiError(400, "must be a date as YYYY-MM-DD", field=name) from None


def _bad_date() -> date:
    raise ValueError


def iso_datetime(body: dict, name: str, *, required: bool = False) -> datetime | None:
    """An ISO 8601 date-time as aware UTC: with an offset (or Z) it is that instant; without
    one it is the department's wall-clock time (the site zone), as DICOM DA/TM are."""
    value = body.get(name)
    if value in (None, ""):
        if required:
            raise ApiError(400, "is required", field=name)
        return None
    if not isinstance(value, str):
        raise ApiError(400, "must be an ISO 8601 date and time", field=name)
    try:
        return from_site(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except (ValueError, OverflowError):  # overflow: year 1 or 9999 moved past the calendar's end
        raise ApiError(400, "must be an ISO 8601 date and time, e.g. 2026-11-28T14:30", field=name) from None


def aet_list(body: dict, name: str) -> str:
    """One AE title or a list of them (JSON list or backslash-separated), as DICOM stores it."""
    value = body.get(name)
    if value in (None, ""):
        return ""
    items = value if isinstance(value, list) else str(value).split("\\") if isinstance(value, str) else None
    if items is None:
        raise ApiError(400, "must be an AE title or a list of AE titles", field=name)
    out = []
    for item in items:
        if not isinstance(item, str) or not item.strip() or len(item.strip()) > 16 or not item.strip().isprintable():
            raise ApiError(400, "each AE title must be 1 to 16 printable characters", field=name)
        out.append(item.strip())
    return "\\".join(out)


def ip_host(body: dict, name: str) -> str:
    """An IP address literal, or "" when absent. Orthanc compares a caller's address with a
    modality's host as text, so a host name would never match: refuse it here."""
    value = body.get(name)
    if value in (None, ""):
        return ""
    try:
        if not isinstance(value, str):
            raise ValueError(value)
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        raise ApiError(400, "must be an IP address (e.g. 10.0.0.21), not a host name", field=name) from None


def tcp_port(body: dict, name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ApiError(400, "must be a whole number from 1 to 65535", field=name)
    return value


def expected_version(body: dict, request) -> int | None:
    """The version of the record the client read, from the body's "version" or an If-Match
    header ("3" or W/"3"); None when it sends neither (then the last writer wins, as before)."""
    value = body.get("version")
    if value is None:
        header = request.headers.get("If-Match", "").strip()
        if not header:
            return None
        header = header.removeprefix("W/").strip('"')
        if not header.isdigit():
            raise ApiError(400, 'If-Match must be the version read, e.g. "3"', field="version")
        value = int(header)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ID:
        raise ApiError(400, "must be the whole-number version read from the record", field="version")
    return value
