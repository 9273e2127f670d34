"""HL7 text handling without sockets: escapes, character sets, names, parsing, ACKs,
and the mapping table printed in the docs."""

from __future__ import annotations

from pathlib import Path

import pytest

from ris_app.hl7 import mapping
from ris_app.hl7.ack import build_ack, read_ack
from ris_app.hl7.parse import Hl7Error, parse, read_envelope, warning
from ris_app.hl7.text import codec_for, escape, pn_to_xpn, unescape, xpn_to_pn
from tests.fixtures import hl7_messages as H

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("value", ["plain", "a|b", "x^y&z~w", "back\\slash", "two\nlines", "Müller 王", ""])
def test_escape_round_trip(value):
    assert unescape(escape(value)) == value.replace("\r\n", "\n")


def test_unescape_sequences():
    assert unescape("M\\S\\ller \\T\\ Co \\E\\ \\F\\ \\R\\") == "M^ller & Co \\ | ~"
    assert unescape("line1\\.br\\line2") == "line1\nline2"
    assert unescape("\\XC3BC\\") == "ü"  # hex bytes, UTF-8
    assert unescape("\\H\\bold\\N\\") == "bold"  # highlighting dropped
    assert unescape("dangling \\E") == "dangling \\E"  # unterminated escape kept as text


@pytest.mark.parametrize(
    "msh18,codec",
    [
        ("", "utf-8"),
        ("8859/1", "latin-1"),
        ("UNICODE UTF-8", "utf-8"),
        ("ASCII", "ascii"),
        ("ISO IR100", "latin-1"),
        ("8859/15", "iso8859_15"),
    ],
)
def test_charsets(msh18, codec):
    assert codec_for(msh18) == codec


def test_latin1_message_decoded_by_msh18():
    raw = H.build(H.ADT_A01, encoding="latin-1", charset="8859/1", family="Müller", given="Jürgen")
    msg = parse(raw)
    assert msg.segment("PID").components(5)[:2] == ["Müller", "Jürgen"]


def test_utf8_bytes_declared_latin1_still_decode_as_latin1():
    # Latin-1 decodes any byte: the declared set wins, as an interface engine expects.
    raw = H.build(H.ADT_A01, charset="8859/1", family="王")
    assert parse(raw).segment("PID").get(5) != "王"


@pytest.mark.parametrize(
    "xpn,pn",
    [
        ("Doe^John", "Doe^John"),
        ("Doe^John^Q^Jr^Dr", "Doe^John^Q^Dr^Jr"),  # XPN suffix^prefix, PN prefix^suffix
        ("Doe^^^^Dr", "Doe^^^Dr"),
        ("Doe&Van^John", "Doe^John"),  # FN subcomponents: the surname
    ],
)
def test_xpn_to_pn(xpn, pn):
    assert xpn_to_pn(xpn) == pn


def test_pn_to_xpn_round_trip():
    for pn in ("Doe^John^Q^Dr^Jr", "王^小明", "Doe"):
        assert xpn_to_pn(pn_to_xpn(pn)) == pn


def test_parse_reads_by_position():
    msg = parse(H.build(H.ORM_O01_NW, acc="ACC9", station="CT1"))
    assert msg.message_type == "ORM^O01" and msg.version == "2.3.1"
    obr = msg.segment("OBR")
    assert obr.get(18) == "ACC9" and obr.get(21) == "CT1" and obr.get(24) == "CT"
    assert obr.get(4, 2) == "CT head without contrast"


@pytest.mark.parametrize(
    "raw,code,location",
    [
        (H.NO_MSH, 100, "MSH"),
        (H.BAD_ENCODING_CHARS, 102, "MSH-2"),
        (H.WRONG_VERSION, 203, "MSH-12"),
        (H.UNKNOWN_SEGMENT, 100, "XYZ"),
        (H.EMPTY_CONTROL_ID, 101, "MSH-10"),
        (H.UNKNOWN_CHARSET, 103, "MSH-18"),
    ],
)
def test_structural_errors_are_rejected(raw, code, location):
    data = H.build(raw) if "{" in raw else raw.encode()
    with pytest.raises(Hl7Error) as exc:
        parse(data)
    assert (exc.value.ack_code, exc.value.error_code, exc.value.location) == ("AR", code, location)


def test_ack_echoes_control_id_and_names_field():
    msg = parse(H.build(H.ADT_A01, ctl="CTL-42"))
    ack = build_ack(msg, "AE", "bad", Hl7Error("AE", 101, "PID-5 missing", "PID-5")).encode()
    assert read_ack(ack) == ("AE", "CTL-42", "bad")
    assert "ERR|PID^1^5^^101&Required field missing&HL70357" in ack.decode()
    v25 = parse(H.build(H.OMI_O23_NW, ctl="CTL-43", acc="A1"))
    ack25 = build_ack(v25, "AE", "x", Hl7Error("AE", 103, "unknown", "IPC-5"))
    assert "ERR||IPC^1^5|103^Table value not found^HL70357|E" in ack25


def test_an_accepted_message_carries_its_warnings_as_err_with_severity_w():
    """A flagged clash or a likely duplicate is accepted (AA) and said in an ERR the sender's
    interface engine can route: 2.5+ severity W with the text in ERR-8; none without one."""
    v25 = parse(H.build(H.OMI_O23_NW, ctl="CTL-44", acc="A2"))
    ack = build_ack(v25, "AA", "order A2 created", warnings=[warning("time clashes with order B: look", "TQ1-7")])
    assert read_ack(ack.encode()) == ("AA", "CTL-44", "order A2 created")
    assert "\rERR||TQ1^1^7|0^Message accepted^HL70357|W||||time clashes with order B: look\r" in ack
    assert "ERR" not in build_ack(v25, "AA", "order A2 created")


def test_envelope_of_broken_message():
    env = read_envelope(b"MSH|^~\\&|EHR|HOSP|R|F|2026||ORM^O01|C-1|P|9.9\r")
    assert (env.control_id, env.version, env.message_type, env.sending_facility) == ("C-1", "9.9", "ORM^O01", "HOSP")
    assert read_envelope(b"\x00garbage").control_id == ""


def test_docs_show_the_mapping_table():
    doc = (REPO / "docs" / "hl7-conformance.md").read_text()
    assert mapping.markdown_table() in doc, (
        "regenerate the table: python -c 'from ris_app.hl7.mapping import markdown_table; print(markdown_table())'"
    )


def test_control_ids_are_unique_and_fit_msh10():
    from ris_app.hl7.ack import new_control_id

    ids = {new_control_id("S") for _ in range(20000)}
    assert len(ids) == 20000 and all(len(i) <= 20 and i.startswith("S") for i in ids)


@pytest.mark.parametrize(
    "env",
    [
        {"ORTHANC_RIS_HL7_STATION_RULES": "room:CT=CT1"},
        {"ORTHANC_RIS_HL7_DESTINATIONS": "EHR=nohostport"},
        {"ORTHANC_RIS_HL7_STATUS_MESSAGE": "ADT^A08"},
    ],
)
def test_bad_hl7_settings_are_refused_by_up(tmp_path, env):
    import os
    import subprocess
    import sys

    proc = subprocess.run(
        [str(Path(sys.executable).parent / "orthanc-ris"), "up"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "ORTHANC_RIS_HOME": str(tmp_path), **env},
        timeout=60,
    )
    assert proc.returncode != 0 and "ORTHANC_RIS_HL7_" in proc.stderr and "Traceback" not in proc.stderr
