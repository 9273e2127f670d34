"""The stations table as Orthanc's DICOM allowlist.

Orthanc runs with every `DicomAlwaysAllow*` off and `DicomModalitiesInDatabase` on, so only
the modalities in its database may associate, and those are changed at runtime with
`PUT/DELETE /modalities/{id}` (next association, no restart). The RIS owns the entries
whose id starts with `ris-station-`; anything else a department declared by hand is left
alone. A PUT replaces the whole entry and an `Allow*` left out turns back on, so every
flag is always sent (ALLOW).
"""

from __future__ import annotations

import logging

import requests
from sqlalchemy import select
from sqlalchemy.orm import Session

from ris_app.config import Config
from ris_app.model import Station
from ris_app.orthanc.client import OrthancError, orthanc_request

log = logging.getLogger(__name__)

PREFIX = "ris-station-"
DEFAULT_PORT = 104  # where Orthanc would reach a station that gave no port (unused by C-FIND/C-STORE SCP)
# What a scanner may do at Orthanc: echo, store images, query the worklist; nothing else.
ALLOW = {
    "AllowEcho": True,
    "AllowStore": True,
    "AllowFind": False,
    "AllowFindWorklist": True,
    "AllowGet": False,
    "AllowMove": False,
    "AllowStorageCommitment": False,
    "AllowTranscoding": True,
}


def modality_id(station: Station) -> str:
    return f"{PREFIX}{station.id}"


def modality_entry(station: Station) -> dict:
    """Orthanc's `DicomModalities` entry for a station, every flag named."""
    return {
        "AET": station.aet,
        # Without a host Orthanc must not check one (DicomCheckModalityHost off); it still
        # needs a value.
        "Host": station.host or "127.0.0.1",
        "Port": station.port or DEFAULT_PORT,
        **ALLOW,
    }


def checks_hosts(session: Session) -> bool:
    """Whether Orthanc should check callers' addresses (`DicomCheckModalityHost`): only
    when every station gave a host. Orthanc compares one global switch, read at start-up,
    so a station without a host would otherwise be refused."""
    hosts = list(session.scalars(select(Station.host)))
    return bool(hosts) and all(hosts)


def _call(cfg: Config, method: str, path: str, **kw) -> requests.Response:
    try:
        r = orthanc_request(cfg, method, path, timeout=10, **kw)
    except requests.RequestException as exc:
        raise OrthancError(f"Orthanc unreachable: {exc.__class__.__name__}") from None
    if r.status_code >= 400:
        raise OrthancError(f"{method} {path}: HTTP {r.status_code}")
    return r


def put_station(cfg: Config, station: Station) -> None:
    """Declare (or update) one station at Orthanc: it may call at once."""
    _call(cfg, "PUT", f"/modalities/{modality_id(station)}", json=modality_entry(station))
    log.info("Orthanc modality %s set for AE %s", modality_id(station), station.aet)


def sync_stations(cfg: Config, session: Session) -> tuple[int, int]:
    """Make Orthanc's RIS-owned modalities equal the stations table: PUT what differs,
    DELETE what no station has. Returns (set, deleted)."""
    current = _call(cfg, "GET", "/modalities?expand").json()
    wanted = {modality_id(s): s for s in session.scalars(select(Station))}
    changed = deleted = 0
    for mid, station in wanted.items():
        have = current.get(mid)
        # Orthanc answers AllowStorageCommitment as its two parts: compare what it shows.
        if have is None or any(k in have and have[k] != v for k, v in modality_entry(station).items()):
            put_station(cfg, station)
            changed += 1
    for mid in current:
        if mid.startswith(PREFIX) and mid not in wanted:
            _call(cfg, "DELETE", f"/modalities/{mid}")
            log.info("Orthanc modality %s deleted (no such station)", mid)
            deleted += 1
    return changed, deleted


def publish_station(cfg: Config, station: Station) -> bool:
    """After a station was saved: tell Orthanc now, so it can query at once. Orthanc being
    down is not the API caller's fault: the sync worker sets it at its next pass."""
    try:
        put_station(cfg, station)
        return True
    except OrthancError as exc:
        log.warning("station %s saved, Orthanc not told yet (%s): the sync worker retries", station.aet, exc)
        return False
