"""From raw bytes to a Message: decoding by MSH-18, the structural gate, field access.

Two layers on purpose. hl7apy is the authority on the standard's tables: a segment its
reference for the message's version does not define (Z segments aside) is refused with AR,
as are no MSH, broken encoding characters and unsupported versions. Fields are then read by position with our own accessor, because
hl7apy's component lists drop empty components (XPN "Doe^^^^Dr" would lose positions)
and we need escape handling per component.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from ris_app.hl7.text import DEFAULT, Delimiters, UnknownCharset, codec_for, sniff_msh18, unescape

# HL7 table 0357 (message error condition codes) used in ERR segments.
MESSAGE_ACCEPTED = 0
SEGMENT_SEQUENCE_ERROR = 100
REQUIRED_FIELD_MISSING = 101
DATA_TYPE_ERROR = 102
TABLE_VALUE_NOT_FOUND = 103
UNSUPPORTED_MESSAGE_TYPE = 200
UNSUPPORTED_EVENT_CODE = 201
UNSUPPORTED_PROCESSING_ID = 202
UNSUPPORTED_VERSION_ID = 203
UNKNOWN_KEY_IDENTIFIER = 204
DUPLICATE_KEY_IDENTIFIER = 205
APPLICATION_INTERNAL_ERROR = 207

# Domain errors (ris_app.errors) as HL7 error codes (table 0357), by the error's code.
DOMAIN_ERROR_CODES = {
    "invalid": DATA_TYPE_ERROR,
    "not_found": UNKNOWN_KEY_IDENTIFIER,
    "conflict": DUPLICATE_KEY_IDENTIFIER,
    "illegal_transition": APPLICATION_INTERNAL_ERROR,  # the order's state does not allow it
    "unavailable": APPLICATION_INTERNAL_ERROR,
    "unsafe": APPLICATION_INTERNAL_ERROR,  # a safety rule (HL7 orders are held instead)
}

ERROR_TEXT = {
    MESSAGE_ACCEPTED: "Message accepted",
    SEGMENT_SEQUENCE_ERROR: "Segment sequence error",
    REQUIRED_FIELD_MISSING: "Required field missing",
    DATA_TYPE_ERROR: "Data type error",
    TABLE_VALUE_NOT_FOUND: "Table value not found",
    UNSUPPORTED_MESSAGE_TYPE: "Unsupported message type",
    UNSUPPORTED_EVENT_CODE: "Unsupported event code",
    UNSUPPORTED_PROCESSING_ID: "Unsupported processing id",
    UNSUPPORTED_VERSION_ID: "Unsupported version id",
    UNKNOWN_KEY_IDENTIFIER: "Unknown key identifier",
    DUPLICATE_KEY_IDENTIFIER: "Duplicate key identifier",
    APPLICATION_INTERNAL_ERROR: "Application internal error",
}


class Hl7Error(Exception):
    """A message we refuse. ack_code: AE (content: fix the data and resend) or AR (the
    message itself cannot be handled). location: 'PID-3' or 'PID-3.1' or ''."""

    def __init__(self, ack_code: str, error_code: int, text: str, location: str = "", severity: str = "E") -> None:
        super().__init__(text)
        self.ack_code = ack_code
        self.error_code = error_code
        self.text = text
        self.location = location
        self.severity = severity  # ERR-4 (HL7 table 0516): E error, W warning


def warning(text: str, location: str = "") -> Hl7Error:
    """Something the desk must look at in a message that was accepted (AA): a flagged
    booking clash, a held order, a likely duplicate patient. It travels as an ERR with
    severity W (code 0, "message accepted") beside the AA, so the sender's interface engine
    can route it to a person instead of parsing MSA-3 text."""
    return Hl7Error("AA", MESSAGE_ACCEPTED, text, location, severity="W")


def reject(error_code: int, text: str, location: str = "") -> Hl7Error:
    return Hl7Error("AR", error_code, text, location)


def content_error(error_code: int, text: str, location: str = "") -> Hl7Error:
    return Hl7Error("AE", error_code, text, location)


@dataclass
class Segment:
    name: str
    fields: list[str]  # fields[n] is field n, escaped ER7; for MSH fields[1] is the separator
    d: Delimiters = DEFAULT

    def raw(self, n: int) -> str:
        return self.fields[n] if n < len(self.fields) else ""

    def repetitions(self, n: int) -> list[str]:
        value = self.raw(n)
        if self.name == "MSH" and n <= 2:
            return [value]
        return value.split(self.d.repetition) if value else []

    def get(self, n: int, component: int = 1, subcomponent: int = 1, repetition: int = 0) -> str:
        """The unescaped value of field n, component, subcomponent (1-based) of one repetition."""
        if self.name == "MSH" and n <= 2:
            return self.raw(n)
        reps = self.repetitions(n)
        if repetition >= len(reps):
            return ""
        comps = reps[repetition].split(self.d.component)
        if component > len(comps):
            return ""
        subs = comps[component - 1].split(self.d.subcomponent)
        if subcomponent > len(subs):
            return ""
        return unescape(subs[subcomponent - 1], self.d).strip()

    def components(self, n: int, repetition: int = 0) -> list[str]:
        """Every component of one repetition, unescaped (first subcomponent of each)."""
        reps = self.repetitions(n)
        if repetition >= len(reps):
            return []
        return [
            unescape(c.split(self.d.subcomponent)[0], self.d).strip() for c in reps[repetition].split(self.d.component)
        ]


@dataclass
class Message:
    segments: list[Segment]
    d: Delimiters
    text: str
    charset: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def msh(self) -> Segment:
        return self.segments[0]

    def segment(self, name: str, index: int = 0) -> Segment | None:
        found = [s for s in self.segments if s.name == name]
        return found[index] if index < len(found) else None

    def all(self, name: str) -> list[Segment]:
        return [s for s in self.segments if s.name == name]

    # MSH fields every layer needs
    @property
    def control_id(self) -> str:
        return self.msh.get(10)

    @property
    def version(self) -> str:
        return self.msh.get(12)

    @property
    def message_code(self) -> str:
        return self.msh.get(9, 1).upper()

    @property
    def trigger(self) -> str:
        return self.msh.get(9, 2).upper()

    @property
    def message_type(self) -> str:
        return f"{self.message_code}^{self.trigger}" if self.trigger else self.message_code

    @property
    def sending_application(self) -> str:
        return self.msh.get(3)

    @property
    def sending_facility(self) -> str:
        return self.msh.get(4)

    @property
    def receiving_application(self) -> str:
        return self.msh.get(5)

    @property
    def receiving_facility(self) -> str:
        return self.msh.get(6)


@dataclass
class Envelope:
    """What can be read from a message even when it is refused: enough to address a NAK."""

    control_id: str = ""
    version: str = ""
    message_type: str = ""
    sending_application: str = ""
    sending_facility: str = ""
    receiving_application: str = ""
    receiving_facility: str = ""
    charset: str = ""
    d: Delimiters = DEFAULT


def read_envelope(raw: bytes) -> Envelope:
    """Best-effort MSH fields from raw bytes, never raising (for NAKs of broken messages)."""
    env = Envelope()
    try:
        head = raw.lstrip()[: raw.lstrip().find(b"\r") if b"\r" in raw else None].decode("latin-1")
        if not head.startswith("MSH") or len(head) < 4:
            return env
        fsep = head[3]
        f = head.split(fsep)

        def get(n):
            return f[n - 1] if len(f) >= n else ""

        comp = get(2)[:1] or "^"
        env.control_id = get(10)[:199]
        env.version = get(12).split(comp)[0][:20]
        env.message_type = "^".join(get(9).split(comp)[:2])[:20]
        env.sending_application = get(3)[:180]
        env.sending_facility = get(4)[:180]
        env.receiving_application = get(5)[:180]
        env.receiving_facility = get(6)[:180]
        env.charset = get(18)[:32]
        enc = get(2)
        if len(enc) >= 4 and fsep not in enc and len(set(enc[:4] + fsep)) == 5:
            env.d = Delimiters(fsep, enc[0], enc[1], enc[2], enc[3])
    except Exception:
        pass
    return env


def decode(raw: bytes, default_charset: str) -> tuple[str, str]:
    """Decode a message by its MSH-18 (default when empty). Returns (text, codec)."""
    msh18 = sniff_msh18(raw)
    try:
        codec = codec_for(msh18, default_charset)
    except UnknownCharset as exc:
        raise reject(TABLE_VALUE_NOT_FOUND, f"unsupported character set {exc}", "MSH-18") from None
    try:
        return raw.decode(codec), codec
    except UnicodeDecodeError:  # binary data or a wrong MSH-18: the message itself cannot be read
        raise reject(DATA_TYPE_ERROR, f"message is not valid {codec} as MSH-18 says", "MSH-18") from None


# Bytes no HL7 text carries: C0 controls but CR/LF (segment ends), TAB and ESC (ISO 2022
# code extensions of MSH-18), DEL, and NUL anywhere. Binary data in a frame is refused whole.
_BINARY = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1a\x1c-\x1f\x7f]")


def _split_segments(text: str) -> list[str]:
    # Segments end with CR; interface engines sometimes send LF or CRLF: accept them.
    text = text.replace("\r\n", "\r").replace("\n", "\r")
    return [s for s in text.split("\r") if s.strip()]


SUPPORTED_VERSIONS = ("2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6")


@lru_cache(maxsize=1024)
def known_segment(name: str, version: str) -> bool:
    """Whether the standard (hl7apy's tables for that version) defines a segment; Z
    segments are site-defined and always allowed. A full hl7apy parse_message costs
    ~5 ms a message, most of our budget: the table lookup gives the same verdict on names."""
    from hl7apy import find_reference
    from hl7apy.core import Segment as ApySegment
    from hl7apy.exceptions import HL7apyException

    if len(name) != 3 or not name.isalnum() or not name.isupper():
        return False
    if name.startswith("Z"):
        return True
    try:
        return find_reference(name, (ApySegment,), version) is not None
    except (HL7apyException, KeyError, ValueError):
        return False


def parse(raw: bytes, default_charset: str = "UNICODE UTF-8", *, check_grammar: bool = True) -> Message:
    """Parse an ER7 message. Raises Hl7Error (AR for structure, AE for content)."""
    text, codec = decode(raw.strip(b"\x00 \t\r\n"), default_charset)
    if _BINARY.search(text):
        raise reject(DATA_TYPE_ERROR, "message holds binary data (control characters)", "MSH")
    lines = _split_segments(text)
    if not lines or not lines[0].startswith("MSH"):
        raise reject(SEGMENT_SEQUENCE_ERROR, "message does not start with an MSH segment", "MSH")
    head = lines[0]
    if len(head) < 8:
        raise reject(REQUIRED_FIELD_MISSING, "MSH segment is truncated", "MSH-2")
    fsep, enc = head[3], head[4:8]
    if fsep.isalnum() or len(set(enc + fsep)) != 5 or any(c.isalnum() or c.isspace() for c in enc + fsep):
        raise reject(DATA_TYPE_ERROR, "bad field separator or encoding characters", "MSH-2")
    d = Delimiters(fsep, enc[0], enc[1], enc[2], enc[3])
    segments: list[Segment] = []
    for line in lines:
        name = line[:3]
        if name == "MSH":
            # MSH-1 is the separator itself: keep numbering aligned with the standard.
            rest = line[4:].split(fsep)
            segments.append(Segment("MSH", ["MSH", fsep, *rest], d))
        else:
            segments.append(Segment(name, line.split(fsep), d))
    if [s.name for s in segments].count("MSH") != 1:
        raise reject(SEGMENT_SEQUENCE_ERROR, "more than one MSH segment in one frame", "MSH")
    msg = Message(segments, d, "\r".join(lines) + "\r", charset=codec)
    if not msg.control_id:
        raise reject(REQUIRED_FIELD_MISSING, "message control ID is empty", "MSH-10")
    if not msg.message_code:
        raise reject(REQUIRED_FIELD_MISSING, "message type is empty", "MSH-9")
    if msg.version not in SUPPORTED_VERSIONS:
        raise reject(UNSUPPORTED_VERSION_ID, f"unsupported HL7 version {msg.version!r}", "MSH-12")
    if msg.msh.get(11) not in ("", "P", "D", "T"):
        raise reject(UNSUPPORTED_PROCESSING_ID, "processing ID must be P, D or T", "MSH-11")
    if check_grammar:
        for seg in segments[1:]:
            if not known_segment(seg.name, msg.version):
                raise reject(
                    SEGMENT_SEQUENCE_ERROR,
                    f"segment {seg.name[:8]!r} is not defined in HL7 {msg.version}",
                    seg.name[:3],
                )
    return msg
