"""Study events to the RIS, at least once, from Orthanc's durable /changes log.

Orthanc's OnChange callback only wakes this worker; the worker reads `/changes?since=N`
from a cursor kept in a global property, so events missed while the RIS was down, or
while Orthanc was stopped, are delivered when both are back. The cursor moves only after
the RIS has accepted every event before it. The RIS handles each event idempotently, so
a redelivery after a crash changes nothing.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .ris_client import RisClient, RisRejected, RisUnavailable

log = logging.getLogger("risbridge.change_feed")

CURSOR_PROPERTY = 1024  # Orthanc global property ids >= 1024 belong to plugins
# Change types that alter what the RIS knows of a study.
STUDY_CHANGES = frozenset({"NewStudy", "NewSeries", "StableStudy", "Deleted"})
# Orthanc's error code for a resource that does not exist (HTTP 404): orthanc.RestApiGet
# raises orthanc.OrthancException(17, 'Unknown resource') (checked with Orthanc 1.10.1 and
# orthanc-python 4.0).
UNKNOWN_RESOURCE = 17


def is_unknown_resource(exc: Exception) -> bool:
    """Whether Orthanc answered that the resource does not exist, as opposed to failing."""
    return bool(exc.args) and exc.args[0] == UNKNOWN_RESOURCE


BATCH = 200
STATUS_EVERY = 30.0  # seconds between feed-status reports when nothing is delivered
STATUS_MIN_INTERVAL = 1.0  # while the cursor moves: not one HTTP request per instance
# Writing the cursor is a transaction in Orthanc's index, which C-STOREs also need: save it
# at once after a delivery, but only every SAVE_EVERY seconds while it just skips instance
# changes (a crash then re-reads at most those few seconds of the log: still at least once).
SAVE_EVERY = 2.0


@dataclass
class OrthancApi:
    """The Orthanc calls the feed needs, injected so tests can run without Orthanc."""

    rest_get: Callable[[str], bytes]
    get_property: Callable[[int, str], str]
    set_property: Callable[[int, str], None]


class ChangeFeed:
    def __init__(
        self,
        api: OrthancApi,
        ris: RisClient,
        poll_seconds: float = 5.0,
        max_backoff: float = 30.0,
        debounce_seconds: float = 0.0,
    ) -> None:
        self.api = api
        self.ris = ris
        self.poll_seconds = poll_seconds
        self.max_backoff = max_backoff
        # After a wake-up, let a burst of instances arrive before reading /changes: one
        # drain (and one cursor write in Orthanc's index) per burst, not per instance.
        self.debounce_seconds = debounce_seconds
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.delivered = 0
        self.last_seen = 0  # Orthanc's newest change seq seen in /changes
        self._reported_at = 0.0
        self._reported_cursor: int | None = None
        self._cursor: int | None = None  # read from the global property once, then kept here
        self._saved: int | None = None
        self._saved_at = 0.0

    # -- lifecycle ---------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="orthanc-ris-change-feed", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        try:
            self.save_cursor(force=True)
        except Exception:  # Orthanc is stopping; the next start re-reads a little more
            log.warning("could not save the change cursor on stop")

    def wake(self) -> None:
        """Called from Orthanc's OnChange thread: cheap, never blocks."""
        self._wake.set()

    # -- work ----------------------------------------------------------------------
    @property
    def cursor(self) -> int:
        if self._cursor is None:
            try:
                self._cursor = int(self.api.get_property(CURSOR_PROPERTY, "0") or 0)
            except ValueError:
                self._cursor = 0
            self._saved = self._cursor
        return self._cursor

    def save_cursor(self, force: bool = False) -> None:
        """Persist the cursor (at once when forced, else at most every SAVE_EVERY s)."""
        now = time.monotonic()
        if self._cursor is not None and self._cursor != self._saved and (force or now - self._saved_at >= SAVE_EVERY):
            self.api.set_property(CURSOR_PROPERTY, str(self._cursor))
            self._saved, self._saved_at = self._cursor, now

    def _run(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            try:
                self.drain()
                self.report_status()
                backoff = 1.0
                self._wake.wait(self.poll_seconds)
                self._wake.clear()
                if self.debounce_seconds:
                    self._stop.wait(self.debounce_seconds)
            except RisUnavailable as exc:
                log.warning("RIS not reachable (%s); retrying in %.0f s", exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff)
            except Exception:  # keep the worker alive whatever happens
                log.exception("change feed error; retrying in %.0f s", backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff)

    def drain(self) -> int:
        """Deliver every change after the cursor. Raises RisUnavailable to retry later."""
        sent = 0
        while not self._stop.is_set():
            cursor = self.cursor
            page = json.loads(self.api.rest_get(f"/changes?since={cursor}&limit={BATCH}"))
            changes = page.get("Changes", [])
            # Coalesce: one event per study per page carries the latest state anyway.
            latest: dict[str, dict] = {}
            for change in changes:
                if change.get("ResourceType") == "Study" and change.get("ChangeType") in STUDY_CHANGES:
                    latest.pop(change["ID"], None)
                    latest[change["ID"]] = change
            for change in sorted(latest.values(), key=lambda c: c["Seq"]):
                self._deliver(change)
                sent += 1
            last = int(page.get("Last", cursor))
            self.last_seen = max(self.last_seen, last)
            if last > cursor:
                self._cursor = last
                self.save_cursor(force=bool(latest))
            if page.get("Done", True) or not changes:
                break
        self.save_cursor()
        self.delivered += sent
        return sent

    def report_status(self) -> None:
        """Tell the RIS where the cursor is, so its health page can show the backlog:
        when the cursor moved (at most every STATUS_MIN_INTERVAL s), else every
        STATUS_EVERY s."""
        now, cursor = time.monotonic(), self.cursor
        wait = STATUS_MIN_INTERVAL if cursor != self._reported_cursor else STATUS_EVERY
        if now - self._reported_at < wait:
            return
        try:
            self.ris.post_json(
                "/api/internal/feed-status", {"cursor": cursor, "last": self.last_seen, "delivered": self.delivered}
            )
            self._reported_at, self._reported_cursor = now, cursor
        except RisRejected as exc:  # an older RIS without the endpoint: say so now and then
            self._reported_at, self._reported_cursor = now, cursor
            log.warning("RIS refused the feed status: %s", exc)

    def _deliver(self, change: dict) -> None:
        event = {"seq": change["Seq"], "change": change["ChangeType"], "orthanc_id": change["ID"]}
        if change["ChangeType"] != "Deleted":
            answers = self._study_answers(change["ID"])
            if answers is None:  # deleted since: tell the RIS so
                event["change"] = "Deleted"
            else:
                event["study"] = study_state(**answers)
        try:
            self.ris.post_json("/api/internal/study-events", event)
        except RisRejected as exc:
            # A refusal will not change on retry; log and move on rather than block the feed.
            log.error("RIS refused event %s for study %s: %s", change["Seq"], change["ID"], exc)

    def _study_answers(self, orthanc_id: str) -> dict | None:
        """Orthanc's answers about the study now (events carry state, not deltas), named
        as `study_state` takes them; None once the study is gone."""
        try:
            study = json.loads(self.api.rest_get(f"/studies/{orthanc_id}"))
            statistics = json.loads(self.api.rest_get(f"/studies/{orthanc_id}/statistics"))
            series = json.loads(self.api.rest_get(f"/studies/{orthanc_id}/series"))
        except Exception as exc:  # orthanc.OrthancException
            if is_unknown_resource(exc):  # gone since the change was logged
                return None
            raise  # anything else (a database error, Orthanc stopping): retried, not "deleted"
        first = (series[0].get("Instances") or [None])[0] if series else None
        return {
            "study": study,
            "statistics": statistics,
            "series": series,
            "instance_tags": self._instance_tags(first),
            "remote_aet": self._remote_aet(first),
        }

    def _instance_tags(self, instance_id: str | None) -> dict:
        """One instance's tags, for the SPS IDs of its Request Attributes Sequence."""
        if instance_id is None:
            return {}
        try:
            return json.loads(self.api.rest_get(f"/instances/{instance_id}/tags?short"))
        except Exception:  # deleted meanwhile, or unreadable: link without SPS IDs
            return {}

    def _remote_aet(self, instance_id: str | None) -> str:
        """The AE title that sent the study (scores candidate orders in the inbox)."""
        if instance_id is None:
            return ""
        try:
            return self.api.rest_get(f"/instances/{instance_id}/metadata/RemoteAET").decode(errors="replace")
        except Exception:  # uploaded over REST: no RemoteAET
            return ""


# The two functions below are the twins of StudyEvent.from_orthanc and sps_ids_of in the
# RIS (ris_app/tracking/events.py): this plugin runs on the standard library inside Orthanc
# and cannot import the RIS, so the code is kept alike, and a contract test
# (tests/tracking/test_study_event_contract.py) feeds both the same Orthanc answers.
def study_state(
    study: dict, statistics: dict, series: list, instance_tags: dict | None = None, remote_aet: str = ""
) -> dict:
    """The "study" of an event, from Orthanc's REST answers: GET /studies/{id},
    /studies/{id}/statistics, /studies/{id}/series, and /instances/{id}/tags?short and
    /instances/{id}/metadata/RemoteAET of the first series' first instance."""
    tags = dict(study.get("PatientMainDicomTags", {}))
    tags.update(study.get("MainDicomTags", {}))
    return {
        "StudyInstanceUID": tags.get("StudyInstanceUID", ""),
        "AccessionNumber": tags.get("AccessionNumber", ""),
        "PatientID": tags.get("PatientID", ""),
        "PatientName": tags.get("PatientName", ""),
        "PatientBirthDate": tags.get("PatientBirthDate", ""),
        "PatientSex": tags.get("PatientSex", ""),
        "StudyDate": tags.get("StudyDate", ""),
        "StudyDescription": tags.get("StudyDescription", ""),
        "Modalities": sorted({s.get("MainDicomTags", {}).get("Modality", "") for s in series} - {""}),
        "CountSeries": int(statistics.get("CountSeries", len(series))),
        "CountInstances": int(statistics.get("CountInstances", 0)),
        "ScheduledProcedureStepIDs": sps_ids_of(instance_tags or {}),
        "RemoteAET": remote_aet.strip(),
    }


def sps_ids_of(instance_tags: dict) -> list:
    """The SPS IDs (0040,0009) of the Request Attributes Sequence (0040,0275) in an
    instance's tags as Orthanc's /tags?short gives them: the third way to link."""
    return [
        str(item["0040,0009"])
        for item in instance_tags.get("0040,0275") or []
        if isinstance(item, dict) and item.get("0040,0009")
    ]
