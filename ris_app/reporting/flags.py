"""What a radiologist must know about a study before reading it: one table of the flags
the reading worklist shows as badges and the report page and the signing step as warnings.

- unmatched: no order claims the images, so the patient and the exam come from the images
  alone, unverified by the RIS. Signing needs an explicit acknowledgement (`needs_ack`),
  not a refusal: an emergency study of an unknown or not yet registered patient must be
  readable at once, and the signature's outputs already cope (the PDF prints what the
  images say, the result message to the EHR waits until the study is linked:
  reporting/header.py, reporting/publish.py). What it must not be is signed by mistake.
- images arriving: Orthanc has not yet seen the study stable (more images may come).
- exam not completed / discontinued: the scheduled step is not (or never will be) completed.

Works on loaded objects only; no Flask, no queries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ris_app.errors import Invalid
from ris_app.model import Study
from ris_app.scheduling.states import SPSStatus


@dataclass(frozen=True)
class ReadingFlag:
    code: str  # also the name of the acknowledgement field: ack_<code>
    badge: str  # the worklist's badge text (never colour alone)
    warning: str  # the report page's and the signing step's sentence
    applies: Callable[[Study], bool]
    needs_ack: bool = False  # signing asks for an explicit tick of `ack` as well
    ack: str = ""


def _step_status(study: Study) -> str | None:
    order = study.order
    if order is None or not order.requested_procedures or not order.requested_procedures[0].steps:
        return None
    return order.requested_procedures[0].steps[0].status


_NOT_DONE = frozenset({SPSStatus.SCHEDULED, SPSStatus.ARRIVED, SPSStatus.READY, SPSStatus.STARTED})

FLAGS: tuple[ReadingFlag, ...] = (
    ReadingFlag(
        "unmatched",
        "unmatched",
        "No order claims these images: the patient and the exam shown come from the images "
        "only and are not verified by the RIS. Link the study to its order in the inbox if "
        "you can; the result goes to the EHR only once it is linked.",
        lambda s: s.order_id is None,
        needs_ack=True,
        ack="I have checked that these images are of this patient and this exam.",
    ),
    ReadingFlag(
        "receiving",
        "images arriving",
        "Images are still arriving (Orthanc has not seen the study complete): more may come after you read it.",
        lambda s: s.stable_at is None,
    ),
    ReadingFlag(
        "in_progress",
        "exam not completed",
        "The exam is not completed yet (the technologist or the scanner has not finished it).",
        lambda s: _step_status(s) in _NOT_DONE,
    ),
    ReadingFlag(
        "discontinued",
        "exam discontinued",
        "The exam was discontinued: the images may not cover what was ordered.",
        lambda s: _step_status(s) == SPSStatus.DISCONTINUED,
    ),
)


def flags_of(study: Study) -> list[ReadingFlag]:
    """The flags that apply to `study`, in the table's order."""
    return [flag for flag in FLAGS if flag.applies(study)]


def check_acknowledged(study: Study, acknowledged: Iterable[str]) -> None:
    """Invalid (field ack_<code>) when a flag of `study` that needs an acknowledgement
    is not among the `acknowledged` codes."""
    given = set(acknowledged)
    for flag in flags_of(study):
        if flag.needs_ack and flag.code not in given:
            raise Invalid(f"{flag.badge}: confirm that you checked it before signing", field=f"ack_{flag.code}")
