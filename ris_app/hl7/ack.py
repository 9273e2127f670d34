"""ACK and NAK construction: MSA-2 echoes MSH-10; AE/AR carry an ERR naming the field."""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from datetime import datetime

from ris_app.clock import to_site, utc_offset, utcnow
from ris_app.hl7.mapping import parse_location
from ris_app.hl7.parse import ERROR_TEXT, Envelope, Hl7Error, Message
from ris_app.hl7.text import DEFAULT, Delimiters, escape


def new_control_id(prefix: str = "R") -> str:
    """A message control ID (MSH-10), unique across processes and restarts: several
    processes make them (RIS workers queue status messages, the listener ACKs), so a
    per-process counter is not enough. prefix + seconds (base 36) + 48 random bits, 19 chars
    (2.3.1 allows 20)."""
    seconds = int(time.time())
    stamp = ""
    while seconds:
        seconds, digit = divmod(seconds, 36)
        stamp = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"[digit] + stamp
    return f"{prefix[:1]}{stamp:0>6}{secrets.token_hex(6).upper()}"


def hl7_datetime(dt: datetime) -> str:
    """A stored (UTC) time as HL7 DTM in the site's wall-clock time with its offset
    (20261130143000+0100): the receiver reads the department's time and knows the instant."""
    local = to_site(dt)
    return local.strftime("%Y%m%d%H%M%S") + utc_offset(local)


def hl7_now() -> str:
    """MSH-7: now, as hl7_datetime writes it."""
    return hl7_datetime(utcnow())


def _location_er7(loc: str, d: Delimiters) -> list[str]:
    """'PID-3.1' -> ['PID', '1', '3', '1'] (ERL: segment^sequence^field^component)."""
    if not loc:
        return []
    if "-" not in loc:  # a whole segment
        return [loc[:3], "1"]
    try:
        seg, field, comp, _ = parse_location(loc)
    except ValueError:
        return [loc[:3]]
    out = [seg, "1"]
    if field:
        out.append(str(field))
        if comp:
            out.append(str(comp))
    return out


def err_segment(error: Hl7Error, version: str, d: Delimiters = DEFAULT) -> str:
    """ERR for AE/AR (and warnings beside an AA): HL7 2.5+ puts location in ERR-2, the code
    in ERR-3, the severity in ERR-4 and the text in ERR-8; earlier versions have one ERR-1
    (location with the code as its 4th component) and no severity."""
    code_text = ERROR_TEXT.get(error.error_code, "Error")
    loc = _location_er7(error.location, d)
    f, c, s = d.field, d.component, d.subcomponent
    if version and version < "2.5":
        loc4 = ([*loc, "", "", "", ""])[:4]
        cm = s.join([str(error.error_code), escape(code_text, d), "HL70357"])
        return "ERR" + f + c.join([*loc4, cm]).rstrip(c)
    severity = error.severity
    return (
        f"ERR{f}{f}{c.join(loc)}{f}{error.error_code}{c}{escape(code_text, d)}{c}HL70357"
        f"{f}{severity}{f}{f}{f}{f}{escape(error.text[:250], d)}"
    )


def build_ack(
    source: Message | Envelope,
    code: str,
    text: str = "",
    error: Hl7Error | None = None,
    *,
    warnings: Sequence[Hl7Error] = (),
    application: str = "ORTHANC_RIS",
    facility: str = "RADIOLOGY",
) -> str:
    """An ACK to `source` (a parsed message, or the envelope of one we could not parse):
    one ERR for a refusal, one per warning of an accepted message."""
    if isinstance(source, Message):
        env = Envelope(
            control_id=source.control_id,
            version=source.version,
            message_type=source.message_type,
            sending_application=source.msh.raw(3),
            sending_facility=source.msh.raw(4),
            receiving_application=source.msh.raw(5),
            receiving_facility=source.msh.raw(6),
            charset=source.msh.raw(18),
            d=source.d,
        )
    else:
        env = source
    d = env.d
    f, c = d.field, d.component
    version = env.version if env.version in ("2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6") else "2.5.1"
    trigger = env.message_type.split("^")[1] if "^" in env.message_type else ""
    msh = f.join(
        [
            "MSH",
            d.encoding_characters,
            escape(application, d),
            escape(facility, d),
            env.sending_application,
            env.sending_facility,
            hl7_now(),
            "",
            c.join(["ACK", trigger, "ACK"]) if trigger else "ACK",
            new_control_id("A"),
            "P",
            version,
            "",
            "",
            "",
            "",
            "",
            env.charset if env.charset else "",
        ]
    ).rstrip(f)
    msa = f.join(["MSA", code, escape(env.control_id, d), escape(text[:80], d)]).rstrip(f)
    segments = [msh, msa]
    for problem in ([error] if error is not None else []) + list(warnings):
        segments.append(err_segment(problem, version, d))
    return "\r".join(segments) + "\r"


def read_ack(payload: bytes) -> tuple[str, str, str]:
    """(MSA-1, MSA-2, MSA-3) of an ACK received from a peer; ('', '', reason) if unreadable."""
    text = payload.decode("utf-8", errors="replace").replace("\n", "\r")
    segs = [s for s in text.split("\r") if s]
    if not segs or not segs[0].startswith("MSH") or len(segs[0]) < 4:
        return "", "", "reply is not an HL7 message"
    fsep = segs[0][3]
    for seg in segs[1:]:
        if seg.startswith("MSA"):
            parts = [*seg.split(fsep), "", "", ""]
            return parts[1].strip(), parts[2].strip(), parts[3].strip()
    return "", "", "reply has no MSA segment"
