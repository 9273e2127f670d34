"""The two links of a patient's message: confirm and cancel, no login.

The link's path says which (`/appointment/confirm/<token>`, `/appointment/cancel/<token>`)
and its token, signed with the RIS's secret key (itsdangerous), says the same action, the
step and the appointment time: a tampered token, or one moved to the other path, is
refused (400). A link is valid until the appointment begins, and only for that
appointment: once the step moved, was canceled or the exam began, it answers 410.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy.orm import Session

from ris_app.clock import utcnow
from ris_app.config import Config
from ris_app.errors import Gone, Invalid
from ris_app.model import ScheduledProcedureStep
from ris_app.reminders.plan import WAITING

SALT = "orthanc-ris.appointment-link"
ACTIONS = ("confirm", "cancel")


def _serializer(secret_key: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret_key, salt=SALT)


def link(cfg: Config, step_id: int, appointment_at: datetime, action: str) -> str:
    token = _serializer(cfg.secret_key).dumps({"s": step_id, "a": action, "t": int(appointment_at.timestamp())})
    return f"{cfg.public_url}/appointment/{action}/{token}"


def links(cfg: Config, step_id: int, appointment_at: datetime) -> dict[str, str]:
    return {action: link(cfg, step_id, appointment_at, action) for action in ACTIONS}


@dataclass(frozen=True)
class Appointment:
    step: ScheduledProcedureStep
    action: str


def open_link(session: Session, secret_key: str, action: str, token: str) -> Appointment:
    """The step a link names, or Invalid (not ours, tampered, wrong path) or Gone (the
    appointment passed, moved, or is no longer waiting for the patient)."""
    try:
        data = _serializer(secret_key).loads(token)
        step_id, signed_action, at = int(data["s"]), str(data["a"]), int(data["t"])
    except (BadSignature, KeyError, TypeError, ValueError):
        raise Invalid("this link is not valid", field="token") from None
    if signed_action != action or action not in ACTIONS:
        raise Invalid("this link is not valid", field="token")
    appointment_at = datetime.fromtimestamp(at, UTC)
    if appointment_at <= utcnow():
        raise Gone("this appointment has passed", field="token")
    step = session.get(ScheduledProcedureStep, step_id)
    if step is None or int(step.start_datetime.timestamp()) != at:
        raise Gone("this appointment has changed: use the link of the latest message", field="token")
    if step.status not in WAITING:
        raise Gone(f"this appointment is {step.status.lower()}", field="token")
    return Appointment(step, action)
