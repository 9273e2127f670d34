"""Every HL7 test message, as named templates in one place.

Templates are ER7 with one segment per line; `build()` fills the {placeholders}, turns
line ends into CR and encodes (UTF-8 unless told). Placeholders: ctl (MSH-10), mrn,
family, given, acc (accession), placer, start (YYYYMMDDHHMMSS), code, modality, station,
prior (A40), suid, version.
"""
from __future__ import annotations

from datetime import datetime
from itertools import count

_seq = count(1)


def control_id(prefix: str = "T") -> str:
    return f"{prefix}{datetime.now():%H%M%S}{next(_seq):06d}"


DEFAULTS = {
    "mrn": "HL7-001", "family": "Doe", "given": "Jane", "acc": "", "placer": "PL-1", "code": "CTHEAD",
    "modality": "CT", "station": "", "prior": "", "suid": "", "version": "2.3.1", "sex": "F",
    "birth": "19700101", "charset": "UNICODE UTF-8", "filler": "",
}


def build(template: str, encoding: str = "utf-8", **values: str) -> bytes:
    """An HL7 message from a template: placeholders filled, CR segment ends, encoded."""
    fields = {**DEFAULTS, "ctl": control_id(), "start": datetime.now().strftime("%Y%m%d%H%M%S"), **values}
    text = template.strip("\n").format(**fields)
    return ("\r".join(line for line in text.split("\n")) + "\r").encode(encoding)


# ---------------------------------------------------------------- ADT (HL7 2.3.1)
ADT_A01 = r"""
MSH|^~\&|EHR|HOSP|ORTHANC_RIS|RADIOLOGY|20260101120000||ADT^A01|{ctl}|P|2.3.1||||||{charset}
EVN|A01|20260101120000
PID|1||{mrn}^^^HOSP^MR||{family}^{given}||{birth}|{sex}|||Main Street 1^^Springfield^^12345||555-0100
PV1|1|O
"""

ADT_A04 = ADT_A01.replace("ADT^A01", "ADT^A04").replace("EVN|A01", "EVN|A04")
ADT_A08 = ADT_A01.replace("ADT^A01", "ADT^A08").replace("EVN|A01", "EVN|A08")
ADT_A03 = ADT_A01.replace("ADT^A01", "ADT^A03").replace("EVN|A01", "EVN|A03")
ADT_A11 = ADT_A01.replace("ADT^A01", "ADT^A11").replace("EVN|A01", "EVN|A11")

ADT_A40 = r"""
MSH|^~\&|EHR|HOSP|ORTHANC_RIS|RADIOLOGY|20260101120000||ADT^A40^ADT_A39|{ctl}|P|2.3.1
EVN|A40|20260101120000
PID|1||{mrn}^^^HOSP^MR||{family}^{given}||{birth}|{sex}
MRG|{prior}^^^HOSP^MR
"""

# Names with HL7 escapes (\S\ is ^, \T\ is &, \E\ is \) and a non-Latin name, as the
# interface engine would send them.
ADT_A01_ESCAPED_NAME = ADT_A01.replace("{family}^{given}", r"O'Brien \T\ Sons^Mary")

# ---------------------------------------------------------------- ORM^O01 (HL7 2.3.1, IHE SWF)
ORM_O01_NW = r"""
MSH|^~\&|EHR|HOSP|ORTHANC_RIS|RADIOLOGY|20260101120000||ORM^O01|{ctl}|P|2.3.1||||||{charset}
PID|1||{mrn}^^^HOSP^MR||{family}^{given}||{birth}|{sex}
PV1|1|O
ORC|NW|{placer}|{filler}||SC||^^^{start}^^R||20260101120000|||1234^House^Gregory
OBR|1|{placer}|{filler}|{code}^CT head without contrast^99ORIS||||||||||||1234^House^Gregory||{acc}|||{station}|||{modality}|||^^^{start}^^R||||^headache
ZDS|{suid}^ORTHANC_RIS^Application^DICOM
"""

ORM_O01_XO = ORM_O01_NW.replace("ORC|NW|", "ORC|XO|")
ORM_O01_CA = ORM_O01_NW.replace("ORC|NW|", "ORC|CA|")
ORM_O01_DC = ORM_O01_NW.replace("ORC|NW|", "ORC|DC|")
ORM_O01_SC = ORM_O01_NW.replace("ORC|NW|", "ORC|SN|")  # an order control we do not support

# ---------------------------------------------------------------- OMI^O23 (HL7 2.5.1, IHE SWF.b)
OMI_O23_NW = r"""
MSH|^~\&|EHR|HOSP|ORTHANC_RIS|RADIOLOGY|20260101120000||OMI^O23^OMI_O23|{ctl}|P|2.5.1||||||{charset}
PID|1||{mrn}^^^HOSP^MR||{family}^{given}||{birth}|{sex}
PV1|1|O
ORC|NW|{placer}|{filler}||SC
TQ1|1||||||{start}||R
OBR|1|{placer}|{filler}|{code}^MR brain^99ORIS|||||||||||||||||||{modality}
IPC|{acc}|RP-{acc}|{suid}|SPS-{acc}|{modality}||ROOM7|MRI-1|{station}
"""
OMI_O23_CA = OMI_O23_NW.replace("ORC|NW|", "ORC|CA|")

# ---------------------------------------------------------------- malformed (each with the NAK it earns)
NO_MSH = "PID|1||X^^^HOSP^MR||Doe^John\r"
BAD_ENCODING_CHARS = "MSH|^~|EHR|HOSP|ORTHANC_RIS|RADIOLOGY|20260101120000||ADT^A01|{ctl}|P|2.3.1\rPID|1||X||Doe\r"
WRONG_VERSION = ADT_A01.replace("|P|2.3.1|", "|P|9.9|")
UNKNOWN_TYPE = ADT_A01.replace("ADT^A01", "ZZZ^Z01")
UNKNOWN_EVENT = ADT_A01.replace("ADT^A01", "ADT^A99")
UNKNOWN_SEGMENT = ADT_A01 + "XYZ|1|2\n"
MISSING_PID = "\n".join(line for line in ADT_A01.split("\n") if not line.startswith("PID"))
EMPTY_CONTROL_ID = ADT_A01.replace("|{ctl}|", "||")
UNKNOWN_CHARSET = ADT_A01.replace("{charset}", "KLINGON")

# A peer's ACKs, for the test MLLP receiver.
ACK_TEMPLATE = "MSH|^~\\&|EHR|HOSP|ORTHANC_RIS|RADIOLOGY|20260101120000||ACK^O01^ACK|{own}|P|2.3.1\rMSA|{code}|{ctl}\r"
