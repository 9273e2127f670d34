"""Logging for every process: one line per event, no patient data above DEBUG.

Database errors are the trap: PostgreSQL puts values in its messages (`Key (mrn)=(…)
already exists`, `Failing row contains (…)`), SQLAlchemy copies them into str(exc), and a
logged traceback prints that. Engines hide bound parameters (db.make_engine), and the
formatter here writes a database error as its class, SQLSTATE and constraint, table and
column names, never its message.
"""

from __future__ import annotations

import logging
import os
import traceback

from sqlalchemy.exc import StatementError


def describe_db_error(exc: BaseException) -> str:
    """A database error without any value: driver class, SQLSTATE, constraint, table, column."""
    orig = getattr(exc, "orig", None)
    parts = [type(orig).__name__ if orig is not None else type(exc).__name__]
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if sqlstate:
        parts.append(f"sqlstate {sqlstate}")
    diag = getattr(orig, "diag", None)
    for attr in ("constraint_name", "table_name", "column_name"):
        value = getattr(diag, attr, None)
        if value:
            parts.append(f"{attr.removesuffix('_name')} {value}")
    return ", ".join(parts)


def _is_db_error(exc: BaseException) -> bool:
    return isinstance(exc, StatementError) or type(exc).__module__.split(".")[0] in ("psycopg", "psycopg2", "sqlite3")


def _chain_has_db_error(exc: BaseException | None, seen: set[int]) -> bool:
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if _is_db_error(exc):
            return True
        if exc.__cause__ is not None and _chain_has_db_error(exc.__cause__, seen):
            return True
        exc = exc.__context__
    return False


def _format_chain(exc: BaseException, seen: set[int]) -> list[str]:
    seen.add(id(exc))
    lines: list[str] = []
    if exc.__cause__ is not None and id(exc.__cause__) not in seen:
        lines += _format_chain(exc.__cause__, seen)
        lines.append("\nThe above exception was the direct cause of the following exception:\n\n")
    elif exc.__context__ is not None and not exc.__suppress_context__ and id(exc.__context__) not in seen:
        lines += _format_chain(exc.__context__, seen)
        lines.append("\nDuring handling of the above exception, another exception occurred:\n\n")
    lines.append("Traceback (most recent call last):\n")
    lines += traceback.format_tb(exc.__traceback__)
    if _is_db_error(exc):
        lines.append(f"{type(exc).__module__}.{type(exc).__qualname__}: {describe_db_error(exc)} (message hidden)\n")
    else:
        lines += traceback.format_exception_only(type(exc), exc)
    return lines


class SafeFormatter(logging.Formatter):
    """Formats tracebacks as usual, but database errors without their messages."""

    def formatException(self, ei) -> str:
        exc = ei[1]
        if exc is None or not _chain_has_db_error(exc, set()):
            return super().formatException(ei)
        return "".join(_format_chain(exc, set())).rstrip("\n")


def setup_logging(level: str | None = None, part: str = "ris") -> None:
    level = (level or os.environ.get("ORTHANC_RIS_LOG_LEVEL") or "INFO").upper()
    fmt = f"%(asctime)s {part} %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=level, format=fmt)
    for handler in logging.getLogger().handlers:
        if type(handler.formatter) is logging.Formatter or handler.formatter is None:
            handler.setFormatter(SafeFormatter(fmt))
