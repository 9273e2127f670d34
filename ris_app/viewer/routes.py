"""What the viewer part forwards to Orthanc: one table of the DICOMweb and Orthanc Explorer
routes, with the methods and roles allowed on each, and the check that a request's raw
path is plain enough to be matched against it.

Everything not in the table is refused without contacting Orthanc. The paths OHIF and
Explorer use never need percent-encoding (UIDs are digits and dots, Orthanc ids hex and
dashes), so any `%`, backslash, control character, empty, `.` or `..` segment in the raw
path is refused outright: no decoding rule of Orthanc, urllib3 or a browser can then turn
an allowed path into another one.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from itertools import pairwise

READ = frozenset({"GET", "HEAD"})
VIEWER_ROLES = frozenset({"radiologist", "technologist", "admin"})
EXPLORER_ROLES = frozenset({"radiologist", "admin"})  # Orthanc Explorer reads everything: fewer roles
EXPLORER_WRITE_ROLES = frozenset({"admin"})  # deletes, protection, uploads through Explorer

_UID = r"[0-9]+(?:\.[0-9]+)*"
_ID = r"[0-9a-f]{8}(?:-[0-9a-f]{8}){4}"  # Orthanc's resource ids
_LEVEL = r"(?:patients|studies|series|instances)"
_FRAMES = r"[0-9]+(?:,[0-9]+)*"
_TAG_PATH = r"[0-9A-Fa-f]{8}(?:/[0-9]+/[0-9A-Fa-f]{8})*"  # orthanc-dicomweb's BulkDataURIs
_INSTANCE = rf"studies/{_UID}/series/{_UID}/instances/{_UID}"
_PLAIN_PATH = re.compile(r"[A-Za-z0-9._,/-]*")


@dataclass(frozen=True)
class ProxyRoute:
    """Paths (a regular expression over the path below the prefix) that `roles` may call
    with `methods`."""

    prefix: str  # "dicom-web" (Orthanc's /dicom-web/), "wado" (/wado) or "orthanc" (Orthanc's root)
    pattern: re.Pattern[str]
    methods: frozenset[str]
    roles: frozenset[str]


def _r(prefix: str, pattern: str, methods=READ, roles=VIEWER_ROLES) -> ProxyRoute:
    return ProxyRoute(prefix, re.compile(pattern), frozenset(methods), frozenset(roles))


# QIDO-RS, WADO-RS and WADO-URI as OHIF's DICOMweb data source calls them; Orthanc
# Explorer's read views (explorer.js), and the few writes an admin does there.
ROUTES: tuple[ProxyRoute, ...] = (
    _r("dicom-web", r"(?:studies|series|instances)"),
    _r("dicom-web", rf"studies/{_UID}(?:/(?:metadata|rendered|thumbnail|series|instances))?"),
    _r("dicom-web", rf"studies/{_UID}/series/{_UID}(?:/(?:metadata|rendered|thumbnail|instances))?"),
    _r("dicom-web", rf"{_INSTANCE}(?:/(?:metadata|rendered|thumbnail))?"),
    _r("dicom-web", rf"{_INSTANCE}/frames/{_FRAMES}(?:/rendered)?"),
    _r("dicom-web", rf"{_INSTANCE}/bulk/{_TAG_PATH}"),
    _r("wado", r""),
    _r("orthanc", r"app/[A-Za-z0-9_./-]+", roles=EXPLORER_ROLES),
    _r("orthanc", r"system|patients|studies|plugins|plugins/[A-Za-z0-9_.-]+", roles=EXPLORER_ROLES),
    _r("orthanc", rf"{_LEVEL}/{_ID}(?:/(?:statistics|attachments|metadata|protected|module))?", roles=EXPLORER_ROLES),
    _r("orthanc", rf"patients/{_ID}/studies|studies/{_ID}/series|series/{_ID}/instances", roles=EXPLORER_ROLES),
    _r("orthanc", rf"(?:patients|studies|series)/{_ID}/(?:archive|media)", roles=EXPLORER_ROLES),
    _r("orthanc", rf"{_LEVEL}/{_ID}/attachments/[A-Za-z0-9_-]+/data", roles=EXPLORER_ROLES),
    _r(
        "orthanc",
        rf"instances/{_ID}/(?:tags|simplified-tags|header|frames|preview|file|pdf|frames/[0-9]+/preview)",
        roles=EXPLORER_ROLES,
    ),
    # Explorer's study lookup is a query sent as POST; it changes nothing.
    _r("orthanc", r"tools/find", methods={"POST"}, roles=EXPLORER_ROLES),
    _r("orthanc", r"modalities|peers|jobs|jobs/[A-Za-z0-9-]+", roles=EXPLORER_WRITE_ROLES),
    _r("orthanc", rf"{_LEVEL}/{_ID}", methods={"DELETE"}, roles=EXPLORER_WRITE_ROLES),
    _r("orthanc", rf"patients/{_ID}/protected", methods={"PUT"}, roles=EXPLORER_WRITE_ROLES),
    _r("orthanc", r"instances", methods={"POST"}, roles=EXPLORER_WRITE_ROLES),  # Explorer's upload page
)


class PathRefused(ValueError):
    """The raw request path is not a plain path (traversal, encoding tricks)."""


def plain_path(raw_path: str) -> str:
    """The raw (undecoded) request path, or PathRefused when it holds anything but plain
    segments of letters, digits and `._,-`: no `%`, backslash, control character, empty
    segment, `.` or `..`."""
    if not _PLAIN_PATH.fullmatch(raw_path):
        raise PathRefused("characters outside the plain path set")
    segments = raw_path.split("/")[1:]
    if any(seg in ("", ".", "..") for seg in segments[:-1]) or segments[-1] in (".", ".."):
        raise PathRefused("empty or dot segment")
    return raw_path


def allowed_roles(prefix: str, path: str, method: str) -> frozenset[str] | None:
    """The roles that may call `method` on `path` (below `prefix`), or None when no route
    of the table has that path and method (never for a path that is not plain, whatever
    the patterns say)."""
    try:
        plain_path("/" + path)
    except PathRefused:
        return None
    roles: set[str] = set()
    found = False
    for route in ROUTES:
        if route.prefix == prefix and method in route.methods and route.pattern.fullmatch(path):
            roles |= route.roles
            found = True
    return frozenset(roles) if found else None


# ------------------------------------------------------------------ share-link sessions
# A share session (viewer/share.py) reads one study: DICOMweb GETs whose path names it, and
# the root study search, forced to it. Query keys must be plain keywords or 8-digit tags,
# so no spelling of StudyInstanceUID (a tag with a comma, an encoded letter) can slip past
# the check and override the forced value in Orthanc.
_QUERY_KEY = re.compile(r"[A-Za-z][A-Za-z0-9]*|[0-9A-Fa-f]{8}")
_STUDY_KEYS = frozenset({"studyinstanceuid", "0020000d"})


class ShareRefused(ValueError):
    """A share session's request reaches beyond its study."""


@dataclass(frozen=True)
class ReportHiding:
    """What a share session without the report may not see: the report's series and
    instances the RIS knows (reporting.sharing.report_copies) and, in JSON answers, any
    object whose Modality is in HIDDEN_MODALITIES."""

    series: frozenset[str]
    instances: frozenset[str]


# Document and structured-report series: the signed report's Encapsulated PDF and Basic
# Text SR, and any other report-like object (a prior system's report, a scanned document).
HIDDEN_MODALITIES = frozenset({"DOC", "SR"})
_MODALITY, _MODALITIES_IN_STUDY = "00080060", "00080061"
_SERIES_UID, _SOP_UID = "0020000E", "00080018"
# The study-level answers that would carry the report's objects whole (the study's DICOM
# files, a rendering of any of them): refused, since a multipart stream is not filtered.
_WHOLE_STUDY = ("", "/rendered", "/thumbnail")


def share_query(
    path: str, method: str, query: list[tuple[str, str]], study_uid: str, hiding: ReportHiding | None = None
) -> list[tuple[str, str]]:
    """The query to forward to Orthanc for a share session's DICOMweb request on `path`
    (below /dicom-web/), or ShareRefused: not a read of the table's routes, a path naming
    another study, a search at the root other than of studies, a query key that is not
    plain, a StudyInstanceUID other than the shared one; with `hiding`, a path naming
    one of the report's series or instances, or retrieving the whole study."""
    if method not in READ or allowed_roles("dicom-web", path, method) is None:
        raise ShareRefused("not a read the viewer forwards")
    root_search = path == "studies"
    if not (root_search or path == f"studies/{study_uid}" or path.startswith(f"studies/{study_uid}/")):
        raise ShareRefused("outside the shared study")
    if hiding is not None:
        _check_hidden(path, study_uid, hiding)
    kept = []
    for key, value in query:
        if not _QUERY_KEY.fullmatch(key):
            raise ShareRefused("query key that is not a keyword or a tag")
        if key.lower() in _STUDY_KEYS:
            if value != study_uid:
                raise ShareRefused("search for another study")
            continue
        kept.append((key, value))
    return [*kept, ("StudyInstanceUID", study_uid)] if root_search else kept


def _check_hidden(path: str, study_uid: str, hiding: ReportHiding) -> None:
    if path in (f"studies/{study_uid}{tail}" for tail in _WHOLE_STUDY):
        raise ShareRefused("whole-study retrieve of a share without the report")
    for level, uid in pairwise(path.split("/")):
        if (level == "series" and uid in hiding.series) or (level == "instances" and uid in hiding.instances):
            raise ShareRefused("the report's series or instance, shared without the report")


def share_answer_filtered(path: str) -> bool:
    """Whether a share session's answer on `path` is a DICOM JSON list to filter with
    hide_report (QIDO searches, WADO-RS metadata); frames, bulk data and renderings of
    the allowed series stream unfiltered."""
    return path == "studies" or path.rsplit("/", 1)[-1] in ("series", "instances", "metadata")


def _values(item: dict, tag: str) -> list:
    value = item.get(tag)
    return value.get("Value", []) if isinstance(value, dict) else []


def _hidden(item: dict, hiding: ReportHiding) -> bool:
    return (
        any(m in HIDDEN_MODALITIES for m in _values(item, _MODALITY))
        or any(u in hiding.series for u in _values(item, _SERIES_UID))
        or any(u in hiding.instances for u in _values(item, _SOP_UID))
    )


def hide_report(body: bytes, hiding: ReportHiding) -> bytes:
    """A DICOM JSON answer (a list of datasets) without the report's objects: those of a
    hidden modality, series or instance are dropped, and the hidden modalities are taken
    out of a study's ModalitiesInStudy. ValueError when `body` is not such a list (the
    caller does not pass on what it could not filter)."""
    answer = json.loads(body)
    if not isinstance(answer, list) or not all(isinstance(item, dict) for item in answer):
        raise ValueError("not a DICOM JSON list")
    kept = [item for item in answer if not _hidden(item, hiding)]
    for item in kept:
        modalities = item.get(_MODALITIES_IN_STUDY)
        if isinstance(modalities, dict) and "Value" in modalities:
            modalities["Value"] = [m for m in modalities["Value"] if m not in HIDDEN_MODALITIES]
            if not modalities["Value"]:
                del modalities["Value"]  # DICOM JSON: an empty attribute has no Value
    return json.dumps(kept, separators=(",", ":")).encode()
