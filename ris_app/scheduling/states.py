"""Scheduled procedure step states and the moves between them: one table.

The state names follow dcm4chee-arc's SPS status list (DICOM 0040,0020).
"""

from __future__ import annotations

from enum import StrEnum

from ris_app.errors import Conflict, Invalid


class SPSStatus(StrEnum):
    SCHEDULED = "SCHEDULED"
    ARRIVED = "ARRIVED"
    READY = "READY"
    STARTED = "STARTED"
    DEPARTED = "DEPARTED"
    CANCELED = "CANCELED"
    DISCONTINUED = "DISCONTINUED"
    COMPLETED = "COMPLETED"
    NO_SHOW = "NO_SHOW"  # the patient did not come: no check-in by the end of the booked slot


S = SPSStatus

# action -> (states it may start from, state it leads to)
TRANSITIONS: dict[str, tuple[frozenset[SPSStatus], SPSStatus]] = {
    "arrive": (frozenset({S.SCHEDULED}), S.ARRIVED),
    "ready": (frozenset({S.SCHEDULED, S.ARRIVED}), S.READY),
    "start": (frozenset({S.SCHEDULED, S.ARRIVED, S.READY}), S.STARTED),
    "depart": (frozenset({S.STARTED}), S.DEPARTED),
    "complete": (frozenset({S.STARTED, S.DEPARTED}), S.COMPLETED),
    "cancel": (frozenset({S.SCHEDULED, S.ARRIVED, S.READY}), S.CANCELED),
    "discontinue": (frozenset({S.STARTED, S.DEPARTED}), S.DISCONTINUED),
    # Not in dcm4chee's list: a missed appointment is neither the desk's nor the EHR's
    # cancel, and the front desk and the statistics must tell them apart.
    "no_show": (frozenset({S.SCHEDULED}), S.NO_SHOW),
}

FINAL_STATES = frozenset({S.CANCELED, S.DISCONTINUED, S.COMPLETED, S.NO_SHOW})
# Steps still waiting for the exam: the first image, an MPPS IN PROGRESS or a manual link
# starts them. Read from the table so the automatic starts follow the "start" action.
STARTABLE = TRANSITIONS["start"][0]


class IllegalTransition(Conflict):
    """The step's state does not allow the move (HTTP 409, HL7 application error)."""

    def __init__(self, action: str, current: SPSStatus | str) -> None:
        super().__init__(f"cannot {action} a step that is {current}", field="action", code="illegal_transition")
        self.action = action
        self.current = current


def next_status(current: SPSStatus | str, action: str) -> SPSStatus:
    """The state a step moves to under `action`, or IllegalTransition."""
    if action not in TRANSITIONS:
        raise Invalid("unknown action", field="action")
    sources, target = TRANSITIONS[action]
    if SPSStatus(current) not in sources:
        raise IllegalTransition(action, current)
    return target
