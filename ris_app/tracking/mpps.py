"""Modality Performed Procedure Step SCP (DICOM PS3.4 Annex F; IHE RAD-6/7).

Orthanc has no MPPS, so the RIS runs its own pynetdicom service as a separate process
(`orthanc-ris mpps-scp`, started by `orthanc-ris up`). N-CREATE (IN PROGRESS) moves the
scheduled step to STARTED; N-SET to COMPLETED or DISCONTINUED finishes it and records the
performed series and instances. The DIMSE logic (`MppsManager`) works on a database
session and a dataset, so it is tested without a network as well as through a real SCU.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ris_app.audit import subject
from ris_app.audit.trail import Who, record, record_read
from ris_app.clock import from_site, utcnow
from ris_app.db import begin_write, retrying, set_actor
from ris_app.model import PerformedProcedureStep, ScheduledProcedureStep, Station
from ris_app.model.audit import FAILED, REFUSED
from ris_app.scheduling.orders import lock_step, set_step_status
from ris_app.scheduling.states import FINAL_STATES, STARTABLE, SPSStatus
from ris_app.tracking.linking import find_step_for

log = logging.getLogger(__name__)

IN_PROGRESS, COMPLETED, DISCONTINUED = "IN PROGRESS", "COMPLETED", "DISCONTINUED"
PPS_STATUSES = (IN_PROGRESS, COMPLETED, DISCONTINUED)

# DIMSE statuses (PS3.7 Annex C, PS3.4 F.7.2)
SUCCESS = 0x0000
INVALID_ATTRIBUTE_VALUE = 0x0106
PROCESSING_FAILURE = 0x0110
DUPLICATE_SOP_INSTANCE = 0x0111
NO_SUCH_SOP_INSTANCE = 0x0112
MISSING_ATTRIBUTE = 0x0120
# Error ID sent with PROCESSING_FAILURE when a finished step is set again (PS3.4 F.7.2.2.2).
MAY_NO_LONGER_BE_UPDATED = 0xA710


@dataclass(frozen=True)
class Outcome:
    status: int
    comment: str = ""
    error_id: int | None = None

    def dimse_status(self) -> Dataset | int:
        if self.status == SUCCESS:
            return SUCCESS
        ds = Dataset()
        ds.Status = self.status
        if self.comment:
            ds.ErrorComment = self.comment[:64]
        if self.error_id is not None:
            ds.ErrorID = self.error_id
        return ds


def _offset(value: object) -> timezone | None:
    """TimezoneOffsetFromUTC (0008,0201), +HHMM or -HHMM; None when absent or unreadable."""
    text = str(value or "").strip()
    if len(text) != 5 or text[0] not in "+-" or not text[1:].isdigit():
        return None
    try:
        minutes = int(text[1:3]) * 60 + int(text[3:5])
        return timezone(timedelta(minutes=-minutes if text[0] == "-" else minutes))
    except ValueError:
        return None


def _dt(date: str, time: str, offset: object = None) -> datetime | None:
    """A DICOM DA + TM as aware UTC: in the modality's TimezoneOffsetFromUTC when it sent
    one, else the department's wall-clock time (the site zone)."""
    date, time = (date or "").strip(), (time or "").strip().split(".")[0]
    if not date:
        return None
    try:
        local = datetime.strptime(date + (time + "000000")[:6], "%Y%m%d%H%M%S")
        zone = _offset(offset)
        return local.replace(tzinfo=zone).astimezone(UTC) if zone else from_site(local)
    except (ValueError, OverflowError):
        return None


def performed_series(ds: Dataset) -> list[dict]:
    """The Performed Series Sequence as plain data: series UID and its instance UIDs."""
    out = []
    for series in ds.get("PerformedSeriesSequence") or []:
        refs = [str(i.get("ReferencedSOPInstanceUID", "")) for i in series.get("ReferencedImageSequence") or []]
        refs += [
            str(i.get("ReferencedSOPInstanceUID", ""))
            for i in series.get("ReferencedNonImageCompositeSOPInstanceSequence") or []
        ]
        out.append(
            {"series_instance_uid": str(series.get("SeriesInstanceUID", "")), "instances": [r for r in refs if r]}
        )
    return out


def performed_codes(ds: Dataset, known: list | None = None) -> list[str]:
    """Code values the modality reports as performed (Performed Protocol Code Sequence,
    Procedure Code Sequence), added to those it reported before: billing charges by them."""
    codes = list(known or [])
    for keyword in ("PerformedProtocolCodeSequence", "ProcedureCodeSequence"):
        for item in ds.get(keyword) or []:
            value = str(item.get("CodeValue", "") or "").strip()
            if value and value not in codes:
                codes.append(value[:16])
    return codes


def find_scheduled_step(session: Session, ds: Dataset) -> tuple[ScheduledProcedureStep | None, str]:
    """The step an MPPS reports on, and how it was found. Each item of the Scheduled Step
    Attributes Sequence (one per scheduled step performed) goes through the same rule as
    study linking (`linking.find_step_for`: accession number, then StudyInstanceUID, then
    SPS ID); the first item that names a step wins."""
    for item in ds.get("ScheduledStepAttributesSequence") or []:
        step, method = find_step_for(
            session,
            str(item.get("AccessionNumber", "") or ""),
            str(item.get("StudyInstanceUID", "") or ""),
            [str(item.get("ScheduledProcedureStepID", "") or "")],
        )
        if step is not None:
            return step, method
    return None, ""


class MppsManager:
    """N-CREATE and N-SET of the MPPS SOP class against the RIS database."""

    def create(self, session: Session, sop_uid: str, ds: Dataset) -> Outcome:
        status = str(ds.get("PerformedProcedureStepStatus", "") or "")
        if not status:
            return Outcome(MISSING_ATTRIBUTE, "PerformedProcedureStepStatus missing")
        if status != IN_PROGRESS:
            return Outcome(INVALID_ATTRIBUTE_VALUE, "N-CREATE must be IN PROGRESS")
        if "ScheduledStepAttributesSequence" not in ds:
            return Outcome(MISSING_ATTRIBUTE, "ScheduledStepAttributesSequence missing")
        if (
            session.scalar(select(PerformedProcedureStep.id).where(PerformedProcedureStep.sop_instance_uid == sop_uid))
            is not None
        ):
            return Outcome(DUPLICATE_SOP_INSTANCE, "MPPS instance exists")
        step, method = find_scheduled_step(session, ds)
        if step is not None and step.status in FINAL_STATES:
            return Outcome(PROCESSING_FAILURE, f"scheduled step is {step.status}")
        item = (ds.ScheduledStepAttributesSequence or [Dataset()])[0]
        pps = PerformedProcedureStep(
            sop_instance_uid=sop_uid,
            step=step,
            status=IN_PROGRESS,
            performed_station_aet=str(ds.get("PerformedStationAETitle", "") or "")[:16],
            study_instance_uid=str(item.get("StudyInstanceUID", "") or "")[:64],
            accession_number=str(item.get("AccessionNumber", "") or "")[:16],
            started_at=_dt(
                ds.get("PerformedProcedureStepStartDate", ""),
                ds.get("PerformedProcedureStepStartTime", ""),
                ds.get("TimezoneOffsetFromUTC"),
            )
            or utcnow(),
            performed_series=performed_series(ds),
            performed_codes=performed_codes(ds),
            instance_count=0,
        )
        pps.instance_count = sum(len(s["instances"]) for s in pps.performed_series or [])
        session.add(pps)
        if step is not None:
            set_step_status(step, SPSStatus.STARTED, "mpps", only_from=STARTABLE)
        session.flush()
        log.info("MPPS %s IN PROGRESS (%s)", sop_uid, f"step {step.sps_id} by {method}" if step else "unscheduled")
        return Outcome(SUCCESS)

    def set(self, session: Session, sop_uid: str, mods: Dataset) -> Outcome:
        pps = session.scalar(select(PerformedProcedureStep).where(PerformedProcedureStep.sop_instance_uid == sop_uid))
        if pps is None:
            return Outcome(NO_SUCH_SOP_INSTANCE, "unknown MPPS instance")
        if pps.status != IN_PROGRESS:
            return Outcome(PROCESSING_FAILURE, f"MPPS is {pps.status}", MAY_NO_LONGER_BE_UPDATED)
        new_status = str(mods.get("PerformedProcedureStepStatus", "") or pps.status)
        if new_status not in PPS_STATUSES:
            return Outcome(INVALID_ATTRIBUTE_VALUE, "unknown PerformedProcedureStepStatus")
        if "PerformedSeriesSequence" in mods:
            pps.performed_series = performed_series(mods)
            pps.instance_count = sum(len(s["instances"]) for s in pps.performed_series)
        pps.performed_codes = performed_codes(mods, pps.performed_codes)
        pps.status = new_status
        step = pps.step
        if new_status in (COMPLETED, DISCONTINUED):
            pps.ended_at = (
                _dt(
                    mods.get("PerformedProcedureStepEndDate", ""),
                    mods.get("PerformedProcedureStepEndTime", ""),
                    mods.get("TimezoneOffsetFromUTC"),
                )
                or utcnow()
            )
            if step is not None:
                lock_step(step)
            if step is not None and step.status not in FINAL_STATES:
                set_step_status(step, SPSStatus.STARTED, "mpps", only_from=STARTABLE)
                set_step_status(
                    step, SPSStatus.COMPLETED if new_status == COMPLETED else SPSStatus.DISCONTINUED, "mpps"
                )
        session.flush()
        log.info("MPPS %s %s (%d instances)", sop_uid, new_status, pps.instance_count)
        return Outcome(SUCCESS)


class MppsService:
    """Binds MppsManager to pynetdicom's N-CREATE/N-SET events, one transaction each."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        self.manager = MppsManager()
        subject.watch(sessions)  # the audit event names the patient and order of the step

    def _run(self, fn, sop_uid: str, ds: Dataset, who: Who, action: str) -> Outcome:
        """One writer transaction (db.begin_write), tried again when another writer got in
        first (db.retrying): a step moved by the images or a page meanwhile is re-read. The
        audit event `action` is written in it; a refused request's in one of its own."""
        calling_aet = who.name

        def attempt() -> Outcome:
            session = set_actor(self.sessions(), f"mpps:{calling_aet}" if calling_aet else "mpps")
            try:
                begin_write(session)
                outcome = fn(session, sop_uid, ds)
                if outcome.status == SUCCESS:
                    mrn, accession = subject.touched(session)
                    record(session, action, who, resource=f"MPPS {sop_uid}", mrn=mrn, accession=accession)
                    session.commit()
                else:
                    session.rollback()
                return outcome
            except BaseException:
                session.rollback()
                raise
            finally:
                session.close()

        try:
            outcome = retrying(attempt, what="MPPS")
        except Exception:
            log.exception("MPPS %s: processing failure", sop_uid)
            outcome = Outcome(PROCESSING_FAILURE, "internal error")
        if outcome.status != SUCCESS:
            log.warning("MPPS %s refused: 0x%04X %s", sop_uid, outcome.status, outcome.comment)
            _audit_quietly(
                self.sessions, action, who, outcome=FAILED, resource=f"MPPS {sop_uid}", detail=f"0x{outcome.status:04X}"
            )
        return outcome

    def on_n_create(self, event):
        ds = event.attribute_list
        sop_uid = event.request.AffectedSOPInstanceUID
        reply = Dataset()
        if not sop_uid:  # the SCP assigns the instance UID when the SCU did not (PS3.7 10.1.5)
            sop_uid = generate_uid()
            reply.AffectedSOPInstanceUID = sop_uid
        outcome = self._run(self.manager.create, str(sop_uid), ds, _caller(event), "mpps.create")
        if outcome.status != SUCCESS:
            return outcome.dimse_status(), None
        for elem in ds:
            reply.add(elem)
        return SUCCESS, reply

    def on_n_set(self, event):
        mods = event.modification_list
        sop_uid = str(event.request.RequestedSOPInstanceUID)
        outcome = self._run(self.manager.set, sop_uid, mods, _caller(event), "mpps.set")
        return outcome.dimse_status(), (mods if outcome.status == SUCCESS else None)


def _caller(event) -> Who:
    """The calling AE of the event's association, and its address."""
    try:
        rq = event.assoc.requestor
        return Who(str(rq.primitive.calling_ae_title).strip(), "ae", str(rq.address or ""))
    except AttributeError:
        return Who("", "ae")


def _audit_quietly(sessions: sessionmaker[Session], action: str, who: Who, **fields) -> None:
    """A refusal's event in a transaction of its own; a database that is down is already
    being refused for, and logged (record_read logs the failure)."""
    with contextlib.suppress(Exception):  # logged by record_read; the refusal goes out regardless
        record_read(sessions, action, who, **fields)


class StationAllowlist:
    """Which calling AEs may open an MPPS association: the stations table, read at each
    association (they are few and rare), so a station added through the API may report at
    once. A station with a host may call only from that address. AE titles compare
    without case, as Orthanc compares them."""

    def __init__(self, sessions: sessionmaker[Session], allow_unknown: bool = False) -> None:
        self.sessions = sessions
        self.allow_unknown = allow_unknown

    def allows(self, calling_aet: str, address: str) -> bool:
        if self.allow_unknown:
            return True
        aet = calling_aet.strip().upper()
        with self.sessions() as s:
            hosts = [h for a, h in s.execute(select(Station.aet, Station.host)) if a.strip().upper() == aet]
        return any(not host or host == address for host in hosts)


# A-ASSOCIATE-RJ: rejected permanent, by the service user, calling AE title not recognised.
REJECT_CALLING_AET = (0x01, 0x01, 0x03)


def make_ae(service: MppsService, aet: str, allowlist: StationAllowlist | None = None):
    from pynetdicom import AE, evt
    from pynetdicom.sop_class import ModalityPerformedProcedureStep, Verification

    ae = AE(ae_title=aet)
    ae.require_called_aet = True  # an association for another AE title is not for us
    ae.add_supported_context(ModalityPerformedProcedureStep)
    ae.add_supported_context(Verification)
    handlers = [
        (evt.EVT_N_CREATE, service.on_n_create),
        (evt.EVT_N_SET, service.on_n_set),
        (evt.EVT_REJECTED, lambda event: _on_rejected(event, service.sessions)),
    ]
    if allowlist is not None:
        handlers.append((evt.EVT_REQUESTED, lambda event: _on_requested(event, allowlist)))
    return ae, handlers


def _on_requested(event, allowlist: StationAllowlist) -> None:
    """Refuse an unknown calling AE before negotiation. kill() right after the reject lets
    the A-ASSOCIATE-RJ go out before the socket closes (else the peer sees an abort)."""
    rq = event.assoc.requestor
    calling = str(rq.primitive.calling_ae_title).strip()
    try:
        allowed = allowlist.allows(calling, rq.address)
    except Exception:  # no database: refuse rather than let anyone in
        log.exception("MPPS: cannot read the stations")
        allowed = False
    if not allowed:
        log.warning("MPPS association refused: calling AE %r from %s:%s is not a station", calling, rq.address, rq.port)
        who = Who(calling, "ae", str(rq.address or ""))
        _audit_quietly(
            allowlist.sessions, "dicom.associate", who, outcome=REFUSED, detail="calling AE is not a station"
        )
        event.assoc.acse.send_reject(*REJECT_CALLING_AET)
        event.assoc.kill()


def _on_rejected(event, sessions: sessionmaker[Session]) -> None:
    """pynetdicom's own refusals (called AE title, too many associations)."""
    a = event.assoc
    p = a.acceptor.primitive
    who = Who(str(a.requestor.primitive.calling_ae_title).strip(), "ae", str(a.requestor.address or ""))
    detail = f"called AE {str(a.requestor.primitive.called_ae_title).strip()!r}, reason {p.diagnostic}"
    _audit_quietly(sessions, "dicom.associate", who, outcome=REFUSED, detail=detail)
    log.warning(
        "MPPS association rejected: calling AE %r, called AE %r, from %s (result %s, source %s, reason %s)",
        str(a.requestor.primitive.calling_ae_title).strip(),
        str(a.requestor.primitive.called_ae_title).strip(),
        a.requestor.address,
        p.result,
        p.result_source,
        p.diagnostic,
    )


def serve(database_url: str, host: str, port: int, aet: str, block: bool = True, allow_unknown: bool = False):
    """Run the MPPS SCP (blocking by default; returns the server when block=False)."""
    from ris_app.db import make_engine, make_sessionmaker

    sessions = make_sessionmaker(make_engine(database_url))
    service = MppsService(sessions)
    ae, handlers = make_ae(service, aet, StationAllowlist(sessions, allow_unknown))
    log.info(
        "MPPS SCP %s listening on %s:%d (%s)",
        aet,
        host,
        port,
        "any calling AE" if allow_unknown else "stations' AE titles only",
    )
    return ae.start_server((host, port), block=block, evt_handlers=handlers)
