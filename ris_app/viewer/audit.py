"""The viewer part's audit events: a study opened in OHIF or Orthanc Explorer is one
study.view event, once per study per viewer session (and worker process), not one per
frame; a request refused (401/403) for a study is one refused study.view. Each is written
after the response is built, in a transaction of its own (audit.trail.record_read).

Which study a proxied request is for: `_STUDY_OF`, one pattern per proxy prefix (DICOMweb
names the StudyInstanceUID, WADO-URI its studyUID parameter, Explorer Orthanc's id)."""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable

from flask import Response, request
from sqlalchemy.orm import Session, sessionmaker

from ris_app.audit import subject
from ris_app.audit.trail import Who, record_read
from ris_app.model import Study
from ris_app.model.audit import REFUSED, SUCCESS

_UID = r"[0-9]+(?:\.[0-9]+)*"
_DICOMWEB_STUDY = re.compile(rf"studies/({_UID})(?:/|$)")
_EXPLORER_STUDY = re.compile(r"studies/([0-9a-f]{8}(?:-[0-9a-f]{8}){4})(?:/|$)")


def _dicomweb(path: str) -> tuple[str, str]:
    m = _DICOMWEB_STUDY.match(path)
    return ("study_instance_uid", m.group(1)) if m else ("", "")


def _wado(_path: str) -> tuple[str, str]:
    uid = request.args.get("studyUID", "")
    return ("study_instance_uid", uid[:64]) if re.fullmatch(_UID, uid) else ("", "")


def _explorer(path: str) -> tuple[str, str]:
    m = _EXPLORER_STUDY.match(path)
    return ("orthanc_id", m.group(1)) if m else ("", "")


# Proxy prefix -> (Study column, value) the request names; ("", "") when it names no study.
_STUDY_OF: dict[str, Callable[[str], tuple[str, str]]] = {
    "dicom-web": _dicomweb,
    "wado": _wado,
    "orthanc": _explorer,
}
SEEN_MAX = 10_000  # (viewer session, study) pairs remembered per process


class StudyViews:
    """Records study.view for the viewer app; remembers which session saw which study."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        self.seen: OrderedDict[tuple[str, str, str], None] = OrderedDict()
        self.lock = threading.Lock()

    def _first_time(self, key: tuple[str, str, str]) -> bool:
        with self.lock:
            if key in self.seen:
                self.seen.move_to_end(key)
                return False
            self.seen[key] = None
            if len(self.seen) > SEEN_MAX:
                self.seen.popitem(last=False)
            return True

    def after(self, response: Response, prefix: str, path: str, username: str, viewer_session: str) -> None:
        """Record the view (or refusal) of the study this proxied request names, if any."""
        status = response.status_code
        outcome = REFUSED if status in (401, 403) else SUCCESS if status < 400 else None
        column, value = _STUDY_OF[prefix](path) if prefix in _STUDY_OF else ("", "")
        if outcome is None or not value:
            return
        if not self._first_time((viewer_session or request.remote_addr or "", value, outcome)):
            return
        with self.sessions() as s:
            mrn, accession = subject.by_id(s, Study, value, column)
        record_read(
            self.sessions,
            "study.view",
            Who(username or "(anonymous)", "user", (request.remote_addr or "")[:64]),
            outcome=outcome,
            resource=f"{prefix} study {value}",
            mrn=mrn,
            accession=accession,
            detail=f"HTTP {status}" if outcome == REFUSED else "",
        )
