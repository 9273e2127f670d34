"""Worklist queries for tests: write a C-FIND identifier, run dcmtk's findscu, read the answers."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

# The return keys a scanner typically asks for.
TOP_KEYS = ("SpecificCharacterSet", "PatientName", "PatientID", "PatientBirthDate", "PatientSex",
            "AccessionNumber", "StudyInstanceUID", "RequestedProcedureID", "RequestedProcedureDescription",
            "ReferringPhysicianName")
SPS_KEYS = ("Modality", "ScheduledStationAETitle", "ScheduledProcedureStepStartDate",
            "ScheduledProcedureStepStartTime", "ScheduledProcedureStepID", "ScheduledProcedureStepStatus",
            "ScheduledProcedureStepDescription", "ScheduledStationName")


def write_query(path: Path, sps: dict | None = None, **top) -> Path:
    """A worklist C-FIND identifier with every typical key, values from the arguments."""
    ds = Dataset()
    for key in TOP_KEYS:
        setattr(ds, key, top.get(key, "ISO_IR 192" if key == "SpecificCharacterSet" else ""))
    item = Dataset()
    for key in SPS_KEYS:
        setattr(item, key, (sps or {}).get(key, ""))
    ds.ScheduledProcedureStepSequence = [item]
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.31"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    return path


def run_findscu(dicom_port: int, aet: str, query: Path, out_dir: Path, calling_aet: str = "FINDSCU") -> list[Dataset]:
    """Run `findscu -W -X` and return the answers as datasets (sorted by accession)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("rsp*.dcm"):
        old.unlink()
    proc = subprocess.run(
        ["/usr/bin/findscu", "-W", "-X", "-od", str(out_dir), "-aet", calling_aet, "-aec", aet,
         "127.0.0.1", str(dicom_port), str(query)],
        capture_output=True, text=True, timeout=60, env={**os.environ, "TCP_NODELAY": "1"},
    )
    if proc.returncode != 0:
        raise AssertionError(f"findscu failed ({proc.returncode}): {proc.stderr[-2000:]}")
    answers = [pydicom.dcmread(p) for p in sorted(out_dir.glob("rsp*.dcm"))]
    return sorted(answers, key=lambda d: str(d.get("AccessionNumber", "")))
