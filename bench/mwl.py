#!/usr/bin/env python3
"""Worklist benchmark: orthanc-ris vs Orthanc's file-based worklist plugin.

For each size (default 1,000 / 10,000 / 100,000 scheduled steps) the same items are put
in the RIS (orthanc-ris up: Orthanc + our plugin) and, as .wl files, in a second Orthanc
running libModalityWorklists. The same client (dcmtk's findscu, one process per query,
TCP_NODELAY=1) asks both:

  scanner    its AE title and today (about 70 answers)
  name       a patient name wildcard
  universal  every step, capped by the answer limit (500 on both sides)

and then 8 scanners query at once (the scanner query), counting errors. Prints p50/p95
and the ratio per query kind; `--write` appends the figures to bench/RESULTS.md.

    .venv/bin/python bench/mwl.py --sizes 1000,10000 --repeat 15
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from ris_app.clock import from_site, site_today

FINDSCU = "/usr/bin/findscu"
ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
WORKLIST_PLUGIN = "/usr/share/orthanc/plugins/libModalityWorklists.so"
ENV = {**os.environ, "TCP_NODELAY": "1"}
STATIONS = [f"SCAN{i:02d}" for i in range(10)]
PER_STATION_DAY = 70
LIMIT = 500
FAMILIES = 1000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ the items
def plan(n: int) -> list[dict]:
    """n steps: 10 stations, 70 per station per day from today on, names from 1,000
    families, so a scanner's query for today answers 70 whatever n is."""
    today = datetime.combine(site_today(), datetime.min.time())  # site wall-clock time, as .wl files hold
    rows = []
    for i in range(n):
        day, rest = divmod(i, PER_STATION_DAY * len(STATIONS))
        station, slot = divmod(rest, PER_STATION_DAY)
        start = today + timedelta(days=day, hours=7, minutes=slot * 10)
        rows.append(
            {
                "i": i,
                "mrn": f"B{i:07d}",
                "family": f"Fam{i % FAMILIES:04d}",
                "given": f"Given{i % 97}",
                "birth": date(1940 + i % 60, 1 + i % 12, 1 + i % 28),
                "sex": "MF"[i % 2],
                "accession": f"ACC{i:09d}",
                "sps_id": f"SPS{i:09d}",
                "study_uid": f"1.2.826.0.1.3680043.10.99.{i + 1}",
                "station": STATIONS[station],
                "modality": "CT",
                "start": start,
                "description": f"Exam {i % 50}",
                "physician": f"Doctor^{i % 20}",
            }
        )
    return rows


def wl_dataset(r: dict) -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.AccessionNumber = r["accession"]
    ds.PatientName = f"{r['family']}^{r['given']}"
    ds.PatientID = r["mrn"]
    ds.PatientBirthDate = r["birth"].strftime("%Y%m%d")
    ds.PatientSex = r["sex"]
    ds.StudyInstanceUID = r["study_uid"]
    ds.RequestedProcedureID = r["accession"]
    ds.RequestedProcedureDescription = r["description"]
    ds.RequestedProcedurePriority = "ROUTINE"
    ds.ReferringPhysicianName = r["physician"]
    sps = Dataset()
    sps.Modality = r["modality"]
    sps.ScheduledStationAETitle = r["station"]
    sps.ScheduledProcedureStepStartDate = r["start"].strftime("%Y%m%d")
    sps.ScheduledProcedureStepStartTime = r["start"].strftime("%H%M%S")
    sps.ScheduledPerformingPhysicianName = r["physician"]
    sps.ScheduledProcedureStepDescription = r["description"]
    sps.ScheduledProcedureStepID = r["sps_id"]
    sps.ScheduledProcedureStepStatus = "SCHEDULED"
    ds.ScheduledProcedureStepSequence = [sps]
    return ds


def write_wl_files(rows: list[dict], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for r in rows:
        ds = wl_dataset(r)
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.31"
        ds.file_meta.MediaStorageSOPInstanceUID = f"{r['study_uid']}.1"
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        pydicom.dcmwrite(folder / f"{r['accession']}.wl", ds, enforce_file_format=True)


def load_ris(rows: list[dict], database_url: str) -> None:
    """Put the steps in the RIS as orders placed through its model, items prebuilt."""
    from ris_app.db import make_engine, make_sessionmaker
    from ris_app.model import (
        Order,
        Patient,
        RequestedProcedure,
        ScheduledProcedureStep,
        StepStatusChange,
    )
    from ris_app.ops import migrate
    from ris_app.scheduling.orders import step_changed

    migrate.upgrade(database_url)
    sessions = make_sessionmaker(make_engine(database_url))
    for chunk_start in range(0, len(rows), 2000):
        with sessions() as s:
            steps = []
            for r in rows[chunk_start : chunk_start + 2000]:
                p = Patient(
                    mrn=r["mrn"], family_name=r["family"], given_name=r["given"], birth_date=r["birth"], sex=r["sex"]
                )
                o = Order(
                    accession_number=r["accession"],
                    filler_order_number="",
                    patient=p,
                    priority="ROUTINE",
                    referring_physician=r["physician"],
                )
                rp = RequestedProcedure(
                    requested_procedure_id=r["accession"],
                    description=r["description"],
                    study_instance_uid=r["study_uid"],
                )
                step = ScheduledProcedureStep(
                    sps_id=r["sps_id"],
                    modality=r["modality"],
                    station_aet=r["station"],
                    description=r["description"],
                    start_datetime=from_site(r["start"]),
                    performing_physician=r["physician"],
                    status="SCHEDULED",
                )
                step.history.append(StepStatusChange(from_status=None, to_status="SCHEDULED", source="bench"))
                rp.steps.append(step)
                o.requested_procedures.append(rp)
                s.add(o)
                steps.append(step)
            s.flush()
            for step in steps:
                step_changed(step)
            s.commit()


# ------------------------------------------------------------------ the servers
class FileWorklistOrthanc:
    """A second Orthanc serving .wl files with the sample ModalityWorklists plugin."""

    def __init__(self, home: Path, worklists: Path) -> None:
        self.port = free_port()
        self.aet = "FILEWL"
        home.mkdir(parents=True, exist_ok=True)
        conf = {
            "Name": "bench-file-worklists",
            "HttpPort": free_port(),
            "DicomPort": self.port,
            "DicomAet": self.aet,
            "StorageDirectory": str(home / "storage"),
            "IndexDirectory": str(home / "storage"),
            "DicomAlwaysAllowFindWorklist": True,
            "DicomCheckCalledAet": False,
            "DefaultEncoding": "Utf8",
            "TcpNoDelay": True,
            "DicomThreadsCount": 4,
            "RemoteAccessAllowed": False,
            "Plugins": [WORKLIST_PLUGIN],
            "Worklists": {"Enable": True, "Database": str(worklists), "LimitAnswers": LIMIT},
        }
        (home / "orthanc.json").write_text(json.dumps(conf))
        self.log = open(home / "orthanc.log", "wb")
        self.proc = subprocess.Popen(
            [ORTHANC, str(home / "orthanc.json")],
            env=ENV,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_port(self.port, self.proc)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)


class RisSystem:
    """orthanc-ris up on free ports (Orthanc + our plugin + the RIS)."""

    def __init__(self, home: Path) -> None:
        self.port = free_port()
        self.aet = "RISBENCH"
        self.home = home
        self.env = {
            **ENV,
            "ORTHANC_RIS_HOME": str(home),
            "ORTHANC_RIS_HTTP_PORT": str(free_port()),
            "ORTHANC_RIS_ORTHANC_HTTP_PORT": str(free_port()),
            "ORTHANC_RIS_DICOM_PORT": str(self.port),
            "ORTHANC_RIS_AET": self.aet,
            "ORTHANC_RIS_WORKLIST_LIMIT": str(LIMIT),
            "ORTHANC_RIS_LOG_LEVEL": "WARNING",
            "ORTHANC_RIS_API_TOKEN": "bench-token",
            # A benchmark of answering, not of the allowlist: its simulated scanners call freely.
            "ORTHANC_RIS_DICOM_ALLOW_UNKNOWN_AE": "true",
        }
        self.env.pop("ORTHANC_RIS_DATABASE_URL", None)
        self.database_url = f"sqlite:///{home / 'ris.sqlite3'}"

    def start(self) -> None:
        log = open(self.home / "up.log", "ab")
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "orthanc-ris"), "up"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while b"orthanc-ris is up" not in (self.home / "up.log").read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((self.home / "up.log").read_text()[-3000:])
            time.sleep(0.2)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited while starting")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


# ------------------------------------------------------------------ the client
def write_query(path: Path, *, name: str = "", aet: str = "", day: str = "") -> Path:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    for key in (
        "AccessionNumber",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "StudyInstanceUID",
        "RequestedProcedureID",
        "RequestedProcedureDescription",
    ):
        setattr(ds, key, "")
    ds.PatientName = name
    sps = Dataset()
    sps.Modality = ""
    sps.ScheduledStationAETitle = aet
    sps.ScheduledProcedureStepStartDate = day
    sps.ScheduledProcedureStepStartTime = ""
    sps.ScheduledProcedureStepID = ""
    sps.ScheduledProcedureStepDescription = ""
    ds.ScheduledProcedureStepSequence = [sps]
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.31"
    ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    return path


def findscu(port: int, aet: str, query: Path, calling: str = "SCAN00") -> tuple[float, int, bool]:
    """One query with findscu: (seconds, answers, ok)."""
    started = time.perf_counter()
    proc = subprocess.run(
        [FINDSCU, "-W", "-v", "-aet", calling, "-aec", aet, "127.0.0.1", str(port), str(query)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=600,
    )
    elapsed = time.perf_counter() - started
    out = proc.stdout + proc.stderr
    answers = sum(1 for line in out.splitlines() if "Find Response:" in line and "Pending" in line)
    return elapsed, answers, proc.returncode == 0 and "Success" in out


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    k = max(0, min(len(values) - 1, round(p / 100 * (len(values) - 1))))
    return values[k]


def measure(port: int, aet: str, query: Path, repeat: int) -> dict:
    findscu(port, aet, query)  # warm-up (file cache, connections)
    runs = [findscu(port, aet, query) for _ in range(repeat)]
    times = [r[0] * 1000 for r in runs]
    return {
        "p50": statistics.median(times),
        "p95": pct(times, 95),
        "answers": runs[-1][1],
        "errors": sum(not r[2] for r in runs),
    }


def concurrent(port: int, aet: str, query: Path, scanners: int, per_scanner: int) -> dict:
    def one(k: int):
        return [findscu(port, aet, query, calling=STATIONS[k % len(STATIONS)]) for _ in range(per_scanner)]

    started = time.perf_counter()
    with ThreadPoolExecutor(scanners) as pool:
        results = [r for batch in pool.map(one, range(scanners)) for r in batch]
    wall = time.perf_counter() - started
    times = [r[0] * 1000 for r in results]
    return {
        "p50": statistics.median(times),
        "p95": pct(times, 95),
        "errors": sum(not r[2] for r in results),
        "queries": len(results),
        "wall_s": wall,
    }


# ------------------------------------------------------------------ the run
def run_size(n: int, work: Path, repeat: int, file_repeat: int, scanners: int, per_scanner: int) -> dict:
    print(f"\n=== {n:,} scheduled steps", flush=True)
    rows = plan(n)
    t0 = time.perf_counter()
    write_wl_files(rows, work / "wl")
    t1 = time.perf_counter()
    ris = RisSystem(work / "ris")
    (work / "ris").mkdir(parents=True, exist_ok=True)
    load_ris(rows, ris.database_url)
    t2 = time.perf_counter()
    print(f"  .wl files written in {t1 - t0:.1f} s; RIS loaded (items prebuilt) in {t2 - t1:.1f} s", flush=True)
    today = site_today().strftime("%Y%m%d")
    queries = {
        "scanner": write_query(work / "q_scanner.dcm", aet=STATIONS[3], day=today),
        "name": write_query(work / "q_name.dcm", name="Fam0042*"),
        "universal": write_query(work / "q_universal.dcm"),
    }
    result: dict = {"size": n, "kinds": {}}
    ris.start()
    files = FileWorklistOrthanc(work / "file-orthanc", work / "wl")
    try:
        for kind, q in queries.items():
            ours = measure(ris.port, ris.aet, q, repeat)
            theirs = measure(files.port, files.aet, q, file_repeat)
            result["kinds"][kind] = {"ris": ours, "file": theirs, "ratio": theirs["p50"] / ours["p50"]}
            print(
                f"  {kind:10s} RIS p50 {ours['p50']:8.1f} ms p95 {ours['p95']:8.1f} ms ({ours['answers']} answers) | "
                f"file plugin p50 {theirs['p50']:8.1f} ms p95 {theirs['p95']:8.1f} ms ({theirs['answers']} answers) | "
                f"x{theirs['p50'] / ours['p50']:.1f}",
                flush=True,
            )
        load_ours = concurrent(ris.port, ris.aet, queries["scanner"], scanners, per_scanner)
        load_theirs = concurrent(files.port, files.aet, queries["scanner"], scanners, max(1, per_scanner // 4))
        result["concurrent"] = {"ris": load_ours, "file": load_theirs}
        print(
            f"  {scanners} scanners at once: RIS p50 {load_ours['p50']:.1f} ms p95 {load_ours['p95']:.1f} ms, "
            f"{load_ours['errors']} errors in {load_ours['queries']} | file plugin p50 {load_theirs['p50']:.1f} ms "
            f"p95 {load_theirs['p95']:.1f} ms, {load_theirs['errors']} errors in {load_theirs['queries']}",
            flush=True,
        )
    finally:
        files.stop()
        ris.stop()
    return result


def markdown(results: list[dict], args) -> str:
    lines = [
        f"## Run of {datetime.now().strftime('%Y-%m-%d %H:%M')} on {platform.node() or 'this machine'} "
        f"({os.cpu_count()} cores)",
        "",
        f"`bench/mwl.py --sizes {args.sizes} --repeat {args.repeat} --file-repeat {args.file_repeat} "
        f"--scanners {args.scanners} --per-scanner {args.per_scanner}`",
        "",
        "| steps | query | RIS p50 ms | RIS p95 ms | file plugin p50 ms | file plugin p95 ms | answers (RIS / file) | ratio (p50) |",
        "|---:|---|---:|---:|---:|---:|---|---:|",
    ]
    for r in results:
        for kind, k in r["kinds"].items():
            lines.append(
                f"| {r['size']:,} | {kind} | {k['ris']['p50']:.1f} | {k['ris']['p95']:.1f} | "
                f"{k['file']['p50']:.1f} | {k['file']['p95']:.1f} | {k['ris']['answers']} / "
                f"{k['file']['answers']} | {k['ratio']:.1f}x |"
            )
    lines += [
        "",
        "| steps | scanners at once | RIS p50 / p95 ms | RIS errors | file plugin p50 / p95 ms | file errors |",
        "|---:|---:|---|---|---|---|",
    ]
    for r in results:
        c = r["concurrent"]
        lines.append(
            f"| {r['size']:,} | {args.scanners} | {c['ris']['p50']:.1f} / {c['ris']['p95']:.1f} | "
            f"{c['ris']['errors']} of {c['ris']['queries']} | {c['file']['p50']:.1f} / {c['file']['p95']:.1f} | "
            f"{c['file']['errors']} of {c['file']['queries']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,10000,100000", help="comma-separated numbers of scheduled steps")
    ap.add_argument("--repeat", type=int, default=20, help="queries per kind against the RIS")
    ap.add_argument("--file-repeat", type=int, default=10, help="queries per kind against the file plugin")
    ap.add_argument("--scanners", type=int, default=8, help="scanners querying at once")
    ap.add_argument("--per-scanner", type=int, default=10, help="queries per scanner in the concurrent run")
    ap.add_argument("--write", action="store_true", help="append the figures to bench/RESULTS.md")
    ap.add_argument("--keep", action="store_true", help="keep the working folder")
    args = ap.parse_args()
    results = []
    for n in (int(x) for x in args.sizes.split(",")):
        work = Path(tempfile.mkdtemp(prefix=f"mwl-bench-{n}-"))
        try:
            results.append(run_size(n, work, args.repeat, args.file_repeat, args.scanners, args.per_scanner))
        finally:
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
    text = markdown(results, args)
    print("\n" + text)
    if args.write:
        with open(REPO / "bench" / "RESULTS.md", "a") as f:
            f.write("\n" + text)


if __name__ == "__main__":
    main()
