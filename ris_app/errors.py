"""Domain errors and the one error shape.

Domain code (scheduling, worklist, tracking, reporting) raises these and knows nothing of
HTTP or HL7: `ris_app.web.errors` turns them into HTTP statuses with the JSON body below,
`ris_app.hl7.inbound` into HL7 error codes. Each carries the offending input's name in
`field` when there is one, and a stable machine-readable `code`.
"""

from __future__ import annotations


class DomainError(Exception):
    """A rule of the RIS refused the request; `field` names the input at fault."""

    kind = "invalid"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.code = code or self.kind


class Invalid(DomainError):
    """The input is malformed or breaks a rule of its own (HTTP 400, HL7 data type error)."""

    kind = "invalid"


class NotFound(DomainError):
    """What the input names does not exist (HTTP 404, HL7 unknown key)."""

    kind = "not_found"


class Conflict(DomainError):
    """The input clashes with what is stored: a duplicate, or a move the current state
    does not allow (HTTP 409, HL7 duplicate key or application error)."""

    kind = "conflict"


class Gone(DomainError):
    """What the input names existed but may no longer be used: an expired, revoked or
    locked share link (HTTP 410)."""

    kind = "gone"


class Unavailable(DomainError):
    """A part the request needs (Orthanc, the database) cannot be reached (HTTP 503)."""

    kind = "unavailable"


def error_body(code: str, message: str, field: str | None = None) -> dict:
    """The one error shape, for the API and every other JSON answer."""
    body: dict[str, object] = {"code": code, "message": message}
    if field:
        body["field"] = field
    return {"error": body}


class StaleVersion(Conflict):
    """The record changed since the caller read it (another user, HL7, MPPS, the images):
    applying the request would overwrite or contradict that change (HTTP 409, HL7 AE).
    Names who changed it and when, so the person can reload and decide."""

    def __init__(self, what: str, changed_by: str = "", changed_at=None) -> None:
        from ris_app.clock import to_site  # the site's wall clock: this text is shown to people

        who = f" by {changed_by}" if changed_by else ""
        when = f" at {to_site(changed_at):%Y-%m-%d %H:%M:%S %Z}" if changed_at is not None else ""
        super().__init__(
            f"this {what} was changed{who}{when} since you read it; reload it and try again",
            field="version",
            code="stale_version",
        )
        self.changed_by = changed_by


class Unsafe(DomainError):
    """A safety rule blocks the exam for this patient (contrast with poor kidney function,
    MR with an unsafe implant, ionising radiation in pregnancy) until a radiologist
    overrides it (HTTP 422 with the rule's message; HL7 orders are held instead)."""

    kind = "unsafe"
