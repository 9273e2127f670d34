"""Worklist test data in one place: dcmtk's sample worklists and queries (shipped with the
dcmtk package's documentation), our own queries as dump text, and a wlmscpfs reference
server. Every test reaches worklist data through these functions."""
from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pydicom
from pydicom.dataset import Dataset

DCMTK_EXAMPLES = Path("/usr/share/doc/dcmtk/examples")
DUMP2DCM = "/usr/bin/dump2dcm"
WLMSCPFS = "/usr/bin/wlmscpfs"
FINDSCU = "/usr/bin/findscu"
TOOL_ENV = {**os.environ, "TCP_NODELAY": "1"}


def _dump_text(path: Path) -> str:
    if path.suffix == ".gz":
        return gzip.decompress(path.read_bytes()).decode("latin-1")
    return path.read_text(encoding="latin-1")


def dump_to_dicom(text: str, out: Path) -> Path:
    """Write a dcmdump-style text as a DICOM file (dump2dcm, with file meta)."""
    src = out.with_suffix(".dump")
    src.write_text(text, encoding="latin-1")
    subprocess.run([DUMP2DCM, "-q", "-g", str(src), str(out)], check=True, capture_output=True, env=TOOL_ENV)
    src.unlink()
    return out


def _sample_dumps(sub: str) -> list[Path]:
    folder = DCMTK_EXAMPLES / sub
    return sorted(p for p in folder.rglob("*") if p.name.endswith((".dump", ".dump.gz")))


def sample_worklists(folder: Path) -> Path:
    """dcmtk's 10 sample worklist items as .wl files in `folder`/OFFIS (wlmscpfs layout)."""
    ae = folder / "OFFIS"
    ae.mkdir(parents=True, exist_ok=True)
    (ae / "lockfile").touch()
    for dump in _sample_dumps("wlistdb"):
        name = dump.name.split(".")[0]
        dump_to_dicom(_dump_text(dump), ae / f"{name}.wl")
    return folder


def sample_queries(folder: Path) -> dict[str, Path]:
    """dcmtk's sample worklist queries, as DICOM files, by name."""
    folder.mkdir(parents=True, exist_ok=True)
    return {d.name.split(".")[0]: dump_to_dicom(_dump_text(d), folder / f"{d.name.split('.')[0]}.dcm")
            for d in _sample_dumps("wlistqry")}


def _query(top: str = "", sps: str = "") -> str:
    """A query asking every key of dcmtk's full sample query, with some values set."""
    return (f"(0008,0050) SH []\n(0010,0010) PN []\n(0010,0020) LO []\n(0010,0030) DA []\n"
            f"(0010,0040) CS []\n(0010,2000) LO []\n(0020,000d) UI []\n(0032,1032) PN []\n"
            f"(0032,1060) LO []\n(0040,1001) SH []\n(0040,1003) SH []\n{top}"
            f"(0040,0100) SQ\n(fffe,e000) -\n(0008,0060) CS []\n(0040,0001) AE []\n(0040,0002) DA []\n"
            f"(0040,0003) TM []\n(0040,0006) PN []\n(0040,0007) LO []\n(0040,0009) SH []\n"
            f"(0040,0010) SH []\n(0040,0011) SH []\n(0032,1070) LO []\n{sps}"
            f"(fffe,e00d) -\n(fffe,e0dd) -\n")


def _set(text: str, tag: str, vr: str, value: str) -> str:
    """Replace the empty key `tag` of a query text by a value."""
    return text.replace(f"({tag}) {vr} []", f"({tag}) {vr} [{value}]", 1)


def own_query(**values: tuple[str, str, str]) -> str:
    text = _query()
    for tag, vr, value in values.values():
        text = _set(text, tag, vr, value)
    return text


# Our own cases for every matching rule, answered by wlmscpfs as the reference.
OWN_QUERIES: dict[str, str] = {
    "aet_second_of_two": own_query(aet=("0040,0001", "AE", "AA33")),
    "aet_list": own_query(aet=("0040,0001", "AE", "AB45\\TT67")),
    "modality": own_query(m=("0008,0060", "CS", "CT")),
    "modality_list": own_query(m=("0008,0060", "CS", "CR\\NM")),
    "modality_wildcard": own_query(m=("0008,0060", "CS", "C?")),
    "name_prefix": own_query(n=("0010,0010", "PN", "HAYDN*")),
    "name_inner": own_query(n=("0010,0010", "PN", "*WOLF*")),
    "name_question": own_query(n=("0010,0010", "PN", "?IVALDI^ANTONIO")),
    "name_exact": own_query(n=("0010,0010", "PN", "BEETHOVEN^LUDWIG^VAN")),
    "patient_id": own_query(p=("0010,0020", "LO", "HF")),
    "accession": own_query(a=("0008,0050", "SH", "00005")),
    "study_uid_list": own_query(u=("0020,000d", "UI", "1.2.276.0.7230010.3.2.101\\1.2.276.0.7230010.3.2.105")),
    "date_single": own_query(d=("0040,0002", "DA", "19960406")),
    "date_range": own_query(d=("0040,0002", "DA", "19960101-19960430")),
    "date_open_high": own_query(d=("0040,0002", "DA", "-19951231")),
    "date_open_low": own_query(d=("0040,0002", "DA", "19960501-")),
    "time_range": own_query(t=("0040,0003", "TM", "080000-100000")),
    "date_and_time_combined": own_query(d=("0040,0002", "DA", "19960406-19960423"),
                                        t=("0040,0003", "TM", "120000-111000")),
    "date_and_time_same_day": own_query(d=("0040,0002", "DA", "19960406"), t=("0040,0003", "TM", "160000-170000")),
    "performing_physician": own_query(ph=("0040,0006", "PN", "COOPER")),
    "sps_id": own_query(s=("0040,0009", "SH", "SPD1234")),
    "requested_procedure_id": own_query(r=("0040,1001", "SH", "RP4734734")),
    "station_name": own_query(n=("0040,0010", "SH", "STN456")),
    "location_wildcard": own_query(n=("0040,0011", "SH", "B3*")),
    "sex": own_query(x=("0010,0040", "CS", "M")),
    "several_keys": own_query(m=("0008,0060", "CS", "CT"), n=("0010,0010", "PN", "MOZART*")),
    "no_match": own_query(m=("0008,0060", "CS", "XA")),
}


# Where we go beyond wlmscpfs on purpose, the accession numbers PS3.4 asks for. wlmscpfs
# matches only on its fixed set of keys (not on SPS ID, station name, location or
# StudyInstanceUID: it returns all ten items), and takes `CR\\NM` or `C?` on Modality
# literally (no answer); PS3.4 C.2.2.2 allows list and wildcard matching there.
BEYOND_WLMSCPFS: dict[str, list[str]] = {
    "location_wildcard": ["00000"],
    "sps_id": ["00005"],
    "station_name": ["00000"],
    "study_uid_list": ["00000", "00005"],
    "modality_list": ["00003", "00005", "00007"],
    "modality_wildcard": ["00002", "00003", "00005", "00006", "00008", "00009"],
}
# Through Orthanc 1.10, an SPS item admitted only by combined date+time matching is
# emptied by Orthanc's own matcher (it re-checks sequence items with date and time
# apart): the same steps answer, their ScheduledProcedureStepSequence comes back empty.
ORTHANC_TRIMS_SPS = {"date_and_time_combined": ["00002", "00008"]}


# A step scheduled on several stations answers, through Orthanc 1.10, with the station(s)
# the query matched (Orthanc re-checks SPS items comparing `AA32\\AA33` as one string;
# see worklist._project); wlmscpfs answers all of them. The AE titles each query asked:
ORTHANC_PROJECTS_AET: dict[str, set[str]] = {"aet_second_of_two": {"AA33"}, "aet_list": {"AB45", "TT67"}}
AET_PATH = "ScheduledProcedureStepSequence[0].ScheduledStationAETitle"


def project_aet(answers: list[dict[str, str]], asked: set[str]) -> list[dict[str, str]]:
    """wlmscpfs's answers with the station AE titles reduced to those asked."""
    out = []
    for a in answers:
        a = dict(a)
        if AET_PATH in a:
            a[AET_PATH] = "\\".join(v for v in a[AET_PATH].split("\\") if v in asked)
        out.append(a)
    return sorted(out, key=lambda d: sorted(d.items()))


def own_queries(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return {name: dump_to_dicom(text, folder / f"{name}.dcm") for name, text in OWN_QUERIES.items()}


@contextmanager
def wlmscpfs(db_folder: Path, port: int) -> Iterator[str]:
    """dcmtk's file-based worklist server on `port`, serving AE title OFFIS."""
    proc = subprocess.Popen([WLMSCPFS, "-dfp", str(db_folder), "-s", str(port)], env=TOOL_ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            probe = subprocess.run(["/usr/bin/echoscu", "-aec", "OFFIS", "127.0.0.1", str(port)],
                                   capture_output=True, env=TOOL_ENV)
            if probe.returncode == 0:
                break
            time.sleep(0.1)
        yield "OFFIS"
    finally:
        proc.terminate()
        proc.wait(10)


def find(port: int, called_aet: str, query: Path, out_dir: Path, calling_aet: str = "FINDSCU") -> list[Dataset]:
    """findscu -W; the answers as datasets."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    proc = subprocess.run([FINDSCU, "-W", "-X", "-od", str(out_dir), "-aet", calling_aet, "-aec", called_aet,
                           "127.0.0.1", str(port), str(query)], capture_output=True, text=True, timeout=60,
                          env=TOOL_ENV)
    if proc.returncode != 0:
        raise AssertionError(f"findscu failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return [pydicom.dcmread(p) for p in sorted(out_dir.glob("rsp*.dcm"))]


def comparable(ds: Dataset, prefix: str = "") -> dict[str, str]:
    """An answer as {keyword path: text}, empty values and the character set left out
    (absent and empty are the same answer; values are compared decoded)."""
    out: dict[str, str] = {}
    for elem in ds:
        if elem.keyword == "SpecificCharacterSet" or elem.tag.group == 0x0002:
            continue
        key = prefix + (elem.keyword or str(elem.tag))
        if elem.VR == "SQ":
            for i, item in enumerate(elem.value):
                out.update(comparable(item, f"{key}[{i}]."))
            continue
        value = elem.value
        if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
            text = "\\".join(str(v) for v in value)
        else:
            text = "" if value is None else str(value)
        if text.strip():
            out[key] = text.strip()
    return out


def answer_set(answers: list[Dataset]) -> list[dict[str, str]]:
    return sorted((comparable(a) for a in answers), key=lambda d: sorted(d.items()))
