"""Plain HTML forms read field by field, with every error collected for the page."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import IntegrityError

from ris_app.errors import DomainError
from ris_app.web import db


class Form:
    """A submitted form read field by field: every error is collected (not only the
    first), so the clerk fixes them all in one go; the entered values go back to the page."""

    def __init__(self, data) -> None:
        self.data: dict[str, str] = {k: data.get(k, "") for k in data}
        self.errors: dict[str, str] = {}

    def read(self, reader: Callable[..., Any], name: str, *args, **kwargs) -> Any:
        """Call a validation reader; on refusal, note the field's reason and return None."""
        try:
            return reader(self.data, name, *args, **kwargs)
        except DomainError as err:
            self.fail(err.field or name, err.message)
            return None

    def fail(self, name: str, reason: str) -> None:
        self.errors.setdefault(name, reason)


def commit_or_fail(f: Form, field: str = "") -> bool:
    """Commit; a unique constraint hit by a concurrent writer becomes a form error."""
    try:
        db().commit()
        return True
    except IntegrityError:
        db().rollback()
        f.fail(field, "conflicts with a record saved at the same moment; check and send again")
        return False
