"""Which order a study or a performed procedure step belongs to: one rule for every path.

Study events from the plugin, reconciliation (which replays Orthanc's studies as study
events) and MPPS N-CREATE all link here, in the IHE SWF order of precedence:
AccessionNumber, then StudyInstanceUID, then the SPS IDs (of the Request Attributes
Sequence in images, of the Scheduled Step Attributes Sequence in an MPPS). A value that
names no order falls through to the next, and the first that names one wins: images
carrying the accession of order A and the SPS ID of order B belong to A, whichever path
reports them.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from ris_app.model import Order, RequestedProcedure, ScheduledProcedureStep
from ris_app.scheduling.orders import primary_step

# How a study was linked (Study.link_method); "" when nothing matched.
ACCESSION, STUDY_UID, SPS_ID = "accession", "study_uid", "sps_id"


def find_order_for(
    session: Session, accession: str = "", study_uid: str = "", sps_ids: Iterable[str] = ()
) -> tuple[Order | None, str]:
    """The order these identifiers name, and by which of them (ACCESSION, STUDY_UID,
    SPS_ID); (None, "") when none names an order. Empty values are skipped."""
    if accession:
        order = session.scalar(select(Order).where(Order.accession_number == accession))
        if order is not None:
            return order, ACCESSION
    if study_uid:
        rp = session.scalar(select(RequestedProcedure).where(RequestedProcedure.study_instance_uid == study_uid))
        if rp is not None:
            return rp.order, STUDY_UID
    for sps_id in sps_ids:
        if not sps_id:
            continue
        step = session.scalar(select(ScheduledProcedureStep).where(ScheduledProcedureStep.sps_id == sps_id))
        if step is not None:
            return step.requested_procedure.order, SPS_ID
    return None, ""


def find_step_for(
    session: Session, accession: str = "", study_uid: str = "", sps_ids: Iterable[str] = ()
) -> tuple[ScheduledProcedureStep | None, str]:
    """The scheduled step these identifiers name, for what reports on one step (MPPS): the
    order by `find_order_for`, then its step that one of the SPS IDs names, else its
    primary step (an SPS ID of another order does not override the order found first)."""
    sps_ids = tuple(sps_ids)
    order, method = find_order_for(session, accession, study_uid, sps_ids)
    if order is None:
        return None, ""
    for rp in order.requested_procedures:
        for step in rp.steps:
            if step.sps_id in sps_ids:
                return step, method
    return primary_step(order), method
