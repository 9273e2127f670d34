"""Synthetic DICOM instances for tests and benchmarks (the one accessor for image data)."""
from __future__ import annotations

import io
from datetime import date
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid


def ct_instance(*, patient_id: str, patient_name: str, accession: str = "", study_uid: str | None = None,
                series_uid: str | None = None, instance_number: int = 1, modality: str = "CT",
                sps_id: str = "", size: int = 16, study_date: str | None = None) -> Dataset:
    """A small, valid CT image (size x size, 16-bit) with the given identifiers, acquired
    today unless `study_date` (YYYYMMDD) says otherwise: tests never depend on the day
    they were written."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = CTImageStorage
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.AccessionNumber = accession
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.StudyID = "1"
    ds.StudyDate = study_date or date.today().strftime("%Y%m%d")
    ds.StudyTime = "120000"
    ds.SeriesNumber = 1
    ds.InstanceNumber = instance_number
    ds.Modality = modality
    ds.ReferringPhysicianName = ""
    ds.FrameOfReferenceUID = generate_uid()
    ds.ImagePositionPatient = [0, 0, instance_number]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [1, 1]
    ds.SliceThickness = 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.RescaleIntercept = 0
    ds.RescaleSlope = 1
    ds.KVP = 120
    ds.AcquisitionNumber = 1
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = size
    ds.Columns = size
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelData = bytes((i * 7) % 256 for i in range(size * size * 2))
    if sps_id:
        item = Dataset()
        item.ScheduledProcedureStepID = sps_id
        item.RequestedProcedureID = ""
        ds.RequestAttributesSequence = [item]
    return ds


def write_series(folder: Path, count: int, **kwargs) -> list[Path]:
    """Write `count` instances of one series into `folder`; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    kwargs.setdefault("study_uid", generate_uid())
    kwargs.setdefault("series_uid", generate_uid())
    paths = []
    for n in range(1, count + 1):
        ds = ct_instance(instance_number=n, **kwargs)
        path = folder / f"img{n:04d}.dcm"
        pydicom.dcmwrite(path, ds, enforce_file_format=True)
        paths.append(path)
    return paths


def to_bytes(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()
