"""The HL7 interface over real sockets, in-process: the MLLP listener and outbox sender on a
free port against a fresh database, a test EHR receiving our outbound messages."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from datetime import datetime
from io import BytesIO

import pydicom
import pytest
from sqlalchemy import func, select

from ris_app.clock import from_site, to_site
from ris_app.db import transaction
from ris_app.hl7.ack import hl7_datetime
from ris_app.hl7.listener import Hl7Service
from ris_app.hl7.mllp import END, START, MLLPClient
from ris_app.hl7.outbound import send_report_result, set_settings
from ris_app.hl7.settings import Hl7Settings
from ris_app.model import Hl7Message, Hl7Outbox, Order, Patient, ProcedureCode, Station
from ris_app.scheduling.orders import find_order, find_patient, primary_step
from tests.conftest import free_port, wait_for
from tests.fixtures import hl7_messages as H
from tests.fixtures.hl7_peer import Receiver, fields, msa, send, send_raw

pytestmark = pytest.mark.db


def session(hl7):
    return hl7.sessions()


def one_order(hl7, accession: str) -> Order:
    s = session(hl7)
    return find_order(s, accession)


def stored(hl7, control_id: str) -> list[Hl7Message]:
    with hl7.sessions() as s:
        return s.scalars(select(Hl7Message).where(Hl7Message.control_id == control_id).order_by(Hl7Message.id)).all()


def ack_of(hl7, template: str, **values) -> tuple[str, str, bytes, str]:
    ctl = H.control_id()
    reply = send(hl7.port, H.build(template, ctl=ctl, **values))
    code, echoed = msa(reply)
    return code, echoed, reply, ctl


# ------------------------------------------------------------------ inbound: patients
def test_adt_a01_registers_and_ack_echoes_control_id(hl7):
    code, echoed, reply, ctl = ack_of(hl7, H.ADT_A01, mrn="A01-1", family="Müller", given="Jürgen", sex="M")
    assert (code, echoed) == ("AA", ctl)
    assert fields(reply, "MSH")[9] == "ACK^A01^ACK"
    with hl7.sessions() as s:
        p = find_patient(s, "A01-1")
        assert (p.family_name, p.given_name, p.sex, p.issuer, p.birth_date.isoformat()) == (
            "Müller",
            "Jürgen",
            "M",
            "HOSP",
            "1970-01-01",
        )
        assert p.address.startswith("Main Street 1") and p.phone == "555-0100"
    [row] = stored(hl7, ctl)
    assert (row.status, row.ack_code, row.message_type) == ("processed", "AA", "ADT^A01")
    assert row.raw.startswith(b"MSH|")


def test_escaped_name_is_unescaped(hl7):
    assert ack_of(hl7, H.ADT_A01_ESCAPED_NAME, mrn="ESC-1")[0] == "AA"
    with hl7.sessions() as s:
        assert find_patient(s, "ESC-1").family_name == "O'Brien & Sons"


def test_a08_updates_and_a03_a11_only_refresh(hl7):
    ack_of(hl7, H.ADT_A04, mrn="A08-1", family="Before")
    assert ack_of(hl7, H.ADT_A08, mrn="A08-1", family="After", given="Renamed")[0] == "AA"
    assert ack_of(hl7, H.ADT_A03, mrn="A08-1", family="After", given="Renamed")[0] == "AA"
    assert ack_of(hl7, H.ADT_A11, mrn="NOBODY-1")[0] == "AA"
    with hl7.sessions() as s:
        assert find_patient(s, "A08-1").family_name == "After"
        assert find_patient(s, "NOBODY-1") is None  # A11 does not register anyone


def test_a40_merges_orders_into_surviving_patient(hl7):
    ack_of(hl7, H.ADT_A01, mrn="OLD-1", family="Dup")
    ack_of(hl7, H.ADT_A01, mrn="NEW-1", family="Kept")
    ack_of(hl7, H.ORM_O01_NW, mrn="OLD-1", acc="MRG-ACC-1")
    code, *_ = ack_of(hl7, H.ADT_A40, mrn="NEW-1", family="Kept", prior="OLD-1")
    assert code == "AA"
    with hl7.sessions() as s:
        kept, survivor = find_patient(s, "OLD-1"), find_patient(s, "NEW-1")
        assert kept.merged_into_id == survivor.id  # kept, marked merged (as the pages merge)
        order = find_order(s, "MRG-ACC-1")
        assert order.patient.mrn == "NEW-1"
        item = pydicom.dcmread(BytesIO(primary_step(order).worklist_item))
        assert item.PatientID == "NEW-1" and str(item.PatientName) == "Kept^Jane"
    # only the prior exists: it takes the new ID
    ack_of(hl7, H.ADT_A01, mrn="OLD-2", family="Alone")
    assert ack_of(hl7, H.ADT_A40, mrn="NEW-2", family="Alone", prior="OLD-2")[0] == "AA"
    with hl7.sessions() as s:
        assert find_patient(s, "OLD-2") is None and find_patient(s, "NEW-2") is not None


# ------------------------------------------------------------------ inbound: orders
def test_orm_nw_creates_order_with_ihe_fields(hl7):
    ack_of(hl7, H.ADT_A01, mrn="ORM-1")
    start = "20300102093000"
    code, _, reply, _ = ack_of(
        hl7,
        H.ORM_O01_NW,
        mrn="ORM-1",
        acc="ORM-ACC-1",
        station="CT7",
        start=start,
        suid="1.2.826.0.1.3680043.2.1125.1.1",
        placer="PLC-77",
    )
    assert code == "AA", reply
    with hl7.sessions() as s:
        order = find_order(s, "ORM-ACC-1")
        step = primary_step(order)
        assert (order.placer_order_number, order.priority, order.referring_physician, order.reason_for_exam) == (
            "PLC-77",
            "ROUTINE",
            "House^Gregory",
            "headache",
        )
        assert (step.modality, step.station_aet, step.start_datetime) == (
            "CT",
            "CT7",
            from_site(datetime(2030, 1, 2, 9, 30)),
        )
        assert order.requested_procedures[0].study_instance_uid == "1.2.826.0.1.3680043.2.1125.1.1"
        assert order.requested_procedures[0].procedure_code.code == "CTHEAD"
        assert step.history[0].source == "hl7"
        item = pydicom.dcmread(BytesIO(step.worklist_item))
        assert item.AccessionNumber == "ORM-ACC-1"


def test_omi_o23_reads_ipc(hl7):
    code, *_ = ack_of(
        hl7, H.OMI_O23_NW, mrn="OMI-1", acc="OMI-ACC-1", code="MRBRAIN", modality="MR", station="MR3", suid="1.2.3.4.5"
    )
    assert code == "AA"
    with hl7.sessions() as s:
        order = find_order(s, "OMI-ACC-1")
        step = primary_step(order)
        rp = order.requested_procedures[0]
        assert (rp.requested_procedure_id, rp.study_instance_uid, step.sps_id) == (
            "RP-OMI-ACC-1",
            "1.2.3.4.5",
            "SPS-OMI-ACC-1",
        )
        assert (step.modality, step.station_aet, step.station_name, step.location) == ("MR", "MR3", "ROOM7", "MRI-1")
        assert find_patient(s, "OMI-1") is not None  # the order registered the unknown patient


def test_station_rules_pick_a_station(hl7):
    with transaction(hl7.sessions) as s:
        s.add_all([Station(aet="CTA", modality="CT"), Station(aet="CTB", modality="CT")])
    ack_of(hl7, H.ORM_O01_NW, mrn="ST-1", acc="ST-ACC-1", code="MRKNEE", modality="MR")  # procedure rule
    ack_of(hl7, H.ORM_O01_NW, mrn="ST-1", acc="ST-ACC-2", code="USABD", modality="US")  # modality rule
    ack_of(hl7, H.ORM_O01_NW, mrn="ST-1", acc="ST-ACC-3")  # no rule: every CT station
    ack_of(hl7, H.ORM_O01_NW, mrn="ST-1", acc="ST-ACC-4", code="XRCHEST", modality="CR")  # nothing: any scanner
    with hl7.sessions() as s:
        assert [
            primary_step(find_order(s, a)).station_aet for a in ("ST-ACC-1", "ST-ACC-2", "ST-ACC-3", "ST-ACC-4")
        ] == ["MRK1", "US1", "CTA\\CTB", ""]


def test_xo_changes_then_ca_cancels_then_dc(hl7):
    ack_of(hl7, H.ORM_O01_NW, mrn="XO-1", acc="XO-ACC-1", start="20300101080000")
    code, *_ = ack_of(hl7, H.ORM_O01_XO, mrn="XO-1", acc="XO-ACC-1", start="20300101110000", station="CT2")
    assert code == "AA"
    with hl7.sessions() as s:
        step = primary_step(find_order(s, "XO-ACC-1"))
        assert (to_site(step.start_datetime).hour, step.station_aet) == (11, "CT2")  # site time
        item = pydicom.dcmread(BytesIO(step.worklist_item))
        assert item.ScheduledProcedureStepSequence[0].ScheduledStationAETitle == "CT2"
        # Listed beside the history: the EHR's update and the move, with where it was.
        changes = [(c.kind, c.source, c.what) for c in step.changes]
        assert changes[0] == ("edit", "hl7", "order update from the EHR (ORC-1 XO)")
        assert changes[1][:2] == ("move", "hl7") and changes[1][2].endswith("→ CT2")
        assert to_site(step.changes[1].start_before).hour == 8
    # The same XO again (a new control ID) changes nothing: nothing more is listed.
    ack_of(hl7, H.ORM_O01_XO, mrn="XO-1", acc="XO-ACC-1", start="20300101110000", station="CT2")
    with hl7.sessions() as s:
        assert len(primary_step(find_order(s, "XO-ACC-1")).changes) == 2
    assert ack_of(hl7, H.ORM_O01_CA, mrn="XO-1", acc="XO-ACC-1")[0] == "AA"
    assert ack_of(hl7, H.ORM_O01_CA, mrn="XO-1", acc="XO-ACC-1")[0] == "AA"  # again: nothing to do
    with hl7.sessions() as s:
        assert primary_step(find_order(s, "XO-ACC-1")).status == "CANCELED"
    code, *_ = ack_of(hl7, H.ORM_O01_XO, mrn="XO-1", acc="XO-ACC-1", start="20300101120000")
    assert code == "AE"  # a canceled order cannot change
    # DC of a started exam discontinues it
    ack_of(hl7, H.ORM_O01_NW, mrn="XO-1", acc="DC-ACC-1")
    with transaction(hl7.sessions) as s:
        from ris_app.scheduling.orders import apply_action

        apply_action(primary_step(find_order(s, "DC-ACC-1")), "start")
    assert ack_of(hl7, H.ORM_O01_CA, mrn="XO-1", acc="DC-ACC-1")[0] == "AE"  # started: CA refused
    assert ack_of(hl7, H.ORM_O01_DC, mrn="XO-1", acc="DC-ACC-1")[0] == "AA"
    with hl7.sessions() as s:
        assert primary_step(find_order(s, "DC-ACC-1")).status == "DISCONTINUED"


def test_cancel_found_by_placer_number_without_accession(hl7):
    ack_of(hl7, H.ORM_O01_NW, mrn="PL-1", acc="", placer="PLACER-ONLY")
    assert ack_of(hl7, H.ORM_O01_CA, mrn="PL-1", acc="", placer="PLACER-ONLY")[0] == "AA"
    with hl7.sessions() as s:
        order = s.scalar(select(Order).where(Order.placer_order_number == "PLACER-ONLY"))
        assert primary_step(order).status == "CANCELED"


# ------------------------------------------------------------------ duplicates
def test_duplicate_is_answered_aa_and_applied_once(hl7):
    data = H.build(H.ORM_O01_NW, ctl="DUP-1", mrn="DUP-P", acc="DUP-ACC-1")
    first, second = send(hl7.port, data), send(hl7.port, data)
    assert msa(first) == ("AA", "DUP-1") and msa(second) == ("AA", "DUP-1")
    rows = stored(hl7, "DUP-1")
    assert [r.status for r in rows] == ["processed", "duplicate"] and rows[1].duplicate_of == rows[0].id
    with hl7.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Order).where(Order.accession_number == "DUP-ACC-1")) == 1
    # the same control ID from another facility is another message
    other = H.build(H.ADT_A01, ctl="DUP-1", mrn="DUP-OTHER").replace(b"|HOSP|", b"|CLINIC|", 1)
    assert msa(send(hl7.port, other)) == ("AA", "DUP-1")
    assert [r.status for r in stored(hl7, "DUP-1")] == ["processed", "duplicate", "processed"]


# ------------------------------------------------------------------ content errors: AE naming the field
@pytest.mark.parametrize(
    "template,values,ack,err",
    [
        (H.ADT_A01, {"mrn": ""}, "AE", "PID^1^3^^101"),
        (H.ADT_A01, {"family": "", "given": ""}, "AE", "PID^1^5^^101"),
        (H.ADT_A01, {"birth": "19701301"}, "AE", "PID^1^7^1^102"),
        (H.ADT_A01, {"sex": "X"}, "AE", "PID^1^8^^103"),
        (H.ORM_O01_NW, {"code": "NOPE", "modality": ""}, "AE", "OBR^1^24^^101"),
        (H.ORM_O01_NW, {"suid": "not-a-uid"}, "AE", "ZDS^1^1^1^102"),
        # The field rules of scheduling.fields, the same as the API's (issue 17)
        (H.ORM_O01_NW, {"suid": "1.02.3"}, "AE", "ZDS^1^1^1^102"),
        (H.ADT_A01, {"birth": "29990101"}, "AE", "PID^1^7^1^102"),
        (H.ADT_A01, {"mrn": "A/B"}, "AE", "PID^1^3^1^102"),
        (H.ADT_A01, {"family": "Do\x7fe"}, "AR", "MSH^1^^^102"),  # DEL: binary, refused whole
        (H.ADT_A01, {"family": "Do\u0085e"}, "AE", "PID^1^5^^102"),
        (H.ORM_O01_NW, {"acc": "WAY-TOO-LONG-ACCESSION"}, "AE", "OBR^1^18^^102"),
        (H.ORM_O01_CA, {"acc": "NO-SUCH-ACC", "placer": "NO-SUCH"}, "AE", "OBR^1^18^^204"),
        (H.ORM_O01_SC, {"acc": "SN-1"}, "AE", "ORC^1^1^^103"),
        (H.MISSING_PID.replace("ADT", "ORM").replace("A01", "O01") + "ORC|NW|P\nOBR|1|P\n", {}, "AR", "PID^1^^^100"),
    ],
)
def test_content_errors_get_ae_naming_the_field(hl7, template, values, ack, err):
    code, _, reply, ctl = ack_of(hl7, template, **values)
    assert code == ack, reply
    assert ("ERR|" + err) in reply.decode(), reply
    [row] = stored(hl7, ctl)
    assert row.status == ("error" if ack == "AE" else "rejected") and row.error


def test_duplicate_accession_with_new_control_id_is_ae(hl7):
    ack_of(hl7, H.ORM_O01_NW, mrn="DA-1", acc="DA-ACC")
    code, _, reply, _ = ack_of(hl7, H.ORM_O01_NW, mrn="DA-1", acc="DA-ACC")
    assert code == "AE" and "ERR|OBR^1^18^^205" in reply.decode()


# ------------------------------------------------------------------ malformed matrix: AR, and the listener keeps serving
def _still_serving(hl7):
    assert ack_of(hl7, H.ADT_A01, mrn="ALIVE")[0] == "AA"


@pytest.mark.parametrize(
    "name",
    [
        "no_msh",
        "bad_encoding",
        "wrong_version",
        "unknown_type",
        "unknown_event",
        "unknown_segment",
        "unknown_charset",
        "empty_control_id",
    ],
)
def test_malformed_messages_get_ar(hl7, name):
    template = {
        "no_msh": H.NO_MSH,
        "bad_encoding": H.BAD_ENCODING_CHARS,
        "wrong_version": H.WRONG_VERSION,
        "unknown_type": H.UNKNOWN_TYPE,
        "unknown_event": H.UNKNOWN_EVENT,
        "unknown_segment": H.UNKNOWN_SEGMENT,
        "unknown_charset": H.UNKNOWN_CHARSET,
        "empty_control_id": H.EMPTY_CONTROL_ID,
    }[name]
    ctl = H.control_id()
    reply = send(hl7.port, H.build(template, ctl=ctl))
    code, echoed = msa(reply)
    assert code == "AR", reply
    expected = {"no_msh": "", "empty_control_id": ""}.get(name, ctl)
    assert echoed == expected
    assert "ERR|" in reply.decode()
    _still_serving(hl7)


@pytest.mark.parametrize(
    "garbage",
    [
        bytes(b for b in range(256) if b not in b"\x0b\x1c\r"),
        b"\xff\xfe\x00\x01binary\x80\x81",
        b"\x00\x01\x02\x1b\x7f",
    ],
    ids=["all-bytes", "invalid-utf8", "c0-controls"],
)
def test_binary_garbage_in_a_frame_gets_ar(hl7, garbage):
    ctl = H.control_id()
    message = H.build(H.ADT_A01, ctl=ctl, mrn="BIN-1").replace(b"PV1|1|O", b"PV1|1|" + garbage)
    reply = send(hl7.port, message)
    assert msa(reply)[0] == "AR", reply
    assert stored(hl7, ctl)[0].status == "rejected"
    with session(hl7) as s:
        assert find_patient(s, "BIN-1") is None
    _still_serving(hl7)


def test_truncated_frame_closed_by_peer_gets_ar(hl7):
    reply = send_raw(
        hl7.port, START + b"MSH|^~\\&|EHR|HOSP|R|F|2026||ADT^A01|TRUNC-1|P|2.3.1\rPID|1||X", half_close=True
    )
    assert msa(reply) == ("AR", "TRUNC-1")
    _still_serving(hl7)


def test_truncated_frame_times_out_with_ar(hl7):
    started = time.monotonic()
    reply = send_raw(hl7.port, START + b"MSH|^~\\&|EHR|HOSP|R|F|2026||ADT^A01|TRUNC-2|P|2.3.1\r")
    assert msa(reply) == ("AR", "TRUNC-2") and time.monotonic() - started < 5
    _still_serving(hl7)


def test_oversized_message_gets_ar_and_connection_closes(hl7):
    big = H.build(H.ADT_A01, ctl="BIG-1") + b"NTE|1||" + b"x" * (70 * 1024) + b"\r"
    reply = send_raw(hl7.port, START + big + END)
    assert msa(reply) == ("AR", "BIG-1") and b"exceeds" in reply
    [row] = stored(hl7, "BIG-1")
    assert row.status == "rejected"
    _still_serving(hl7)


def test_many_connections_several_messages_each(hl7):
    errors: list[str] = []

    def worker(n: int) -> None:
        try:
            with MLLPClient("127.0.0.1", hl7.port, 20) as c:
                for i in range(5):
                    ctl = f"MC-{n}-{i}"
                    code, echoed = msa(c.send(H.build(H.ADT_A01, ctl=ctl, mrn=f"MC-{n}-{i}")))
                    if (code, echoed) != ("AA", ctl):
                        errors.append(f"{ctl}: {code} {echoed}")
        except Exception as exc:
            errors.append(repr(exc))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    with hl7.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Patient).where(Patient.mrn.like("MC-%"))) == 60


def test_noise_between_frames_is_ignored(hl7):
    with socket.create_connection(("127.0.0.1", hl7.port), timeout=5) as s:
        s.sendall(b"\r\n" + START + H.build(H.ADT_A01, ctl="NOISE-1") + END + b"\n")
        data = b""
        while not data.endswith(END):
            data += s.recv(4096)
    assert msa(data[1:-2]) == ("AA", "NOISE-1")


# ------------------------------------------------------------------ store API and reprocess
def test_messages_api_and_reprocess_after_fixing_data(hl7, client, auth):
    code, _, _, ctl = ack_of(hl7, H.ORM_O01_NW, mrn="RP-1", acc="RP-ACC-1", code="NEWCODE", modality="")
    assert code == "AE"
    r = client.get("/api/hl7/messages?status=error", headers=auth)
    [item] = [m for m in r.get_json()["items"] if m["control_id"] == ctl]
    assert item["error_location"] == "OBR-24"
    detail = client.get(f"/api/hl7/messages/{item['id']}", headers=auth).get_json()
    assert "ORM^O01" in detail["raw"]
    with transaction(hl7.sessions) as s:  # the operator adds the code to the catalog
        s.add(ProcedureCode(code="NEWCODE", description="New", modality="CT"))
    r = client.post(f"/api/hl7/messages/{item['id']}/reprocess", headers=auth)
    assert r.status_code == 200 and r.get_json()["ack_code"] == "AA", r.get_json()
    with hl7.sessions() as s:
        assert primary_step(find_order(s, "RP-ACC-1")).modality == "CT"
    assert client.post(f"/api/hl7/messages/{item['id']}/reprocess", headers=auth).status_code == 409
    assert client.get("/api/hl7/messages", headers={}).status_code == 401
    assert client.get("/api/hl7/messages?status=bogus", headers=auth).status_code == 400


def test_messages_page_lists_and_reprocesses(hl7, client, app):
    from tests.scheduling.test_pages import _login, _post

    token = _login(app, client, "admin")
    code, _, _, ctl = ack_of(hl7, H.ORM_O01_NW, mrn="PAGE-1", acc="PAGE-ACC", code="PAGECODE", modality="")
    assert code == "AE"
    page = client.get("/hl7?status=error")
    assert page.status_code == 200 and ctl.encode() in page.data and b"Reprocess" in page.data
    [row] = stored(hl7, ctl)
    with transaction(hl7.sessions) as s:
        s.add(ProcedureCode(code="PAGECODE", description="Page", modality="CT"))
    assert client.post(f"/hl7/messages/{row.id}/reprocess").status_code == 400  # no CSRF token
    r = _post(client, f"/hl7/messages/{row.id}/reprocess", token, {})
    assert r.status_code == 302
    assert stored(hl7, ctl)[0].status == "processed"
    assert b"HL7" in client.get("/").data  # in the navigation


# ------------------------------------------------------------------ outbound
def _place(client, auth, mrn: str) -> str:
    client.post("/api/patients", json={"mrn": mrn, "family_name": "Out", "given_name": "Bound"}, headers=auth)
    r = client.post(
        "/api/orders",
        json={"mrn": mrn, "procedure_code": "CTHEAD", "scheduled_start": "2030-01-01T10:00", "station_aet": "CT1"},
        headers=auth,
    )
    return r.get_json()["accession_number"]


def test_status_changes_reach_the_ehr_in_order(hl7, client, auth, receiver):
    acc = _place(client, auth, "OUT-1")
    for action in ("arrive", "start", "complete"):
        assert client.post(f"/api/orders/{acc}/status", json={"action": action}, headers=auth).status_code == 200
    msgs = wait_for(lambda: len(receiver.messages("ORM")) >= 3 and receiver.messages("ORM"), timeout=10)
    assert [fields(m, "ORC")[5] for m in msgs] == ["SC", "IP", "CM"]
    assert all(fields(m, "OBR")[18] == acc for m in msgs)
    assert fields(msgs[0], "PID")[5] == "Out^Bound"
    with hl7.sessions() as s:
        rows = s.scalars(select(Hl7Outbox).where(Hl7Outbox.reference == acc)).all()
        assert [r.status for r in rows] == ["sent"] * 3 and all(r.ack_code == "AA" for r in rows)


def test_changes_from_the_ehr_are_not_echoed(hl7, receiver):
    ack_of(hl7, H.ORM_O01_NW, mrn="ECHO-1", acc="ECHO-ACC")
    ack_of(hl7, H.ORM_O01_CA, mrn="ECHO-1", acc="ECHO-ACC")
    time.sleep(0.5)
    assert not [m for m in receiver.messages() if b"ECHO-ACC" in m]


def test_outbound_is_resent_after_the_receiver_was_down(hl7, client, auth, receiver):
    port = receiver.port
    receiver.stop()
    acc = _place(client, auth, "DOWN-1")
    client.post(f"/api/orders/{acc}/status", json={"action": "arrive"}, headers=auth)
    client.post(f"/api/orders/{acc}/status", json={"action": "cancel"}, headers=auth)

    def attempts():
        with hl7.sessions() as s:
            rows = s.scalars(select(Hl7Outbox).where(Hl7Outbox.reference == acc).order_by(Hl7Outbox.id)).all()
            return rows if rows and rows[0].attempts >= 2 else None

    rows = wait_for(attempts, timeout=10)
    assert rows[0].status == "pending" and "cannot deliver" in rows[0].last_error
    assert rows[1].attempts == 0  # held back behind the first: order is kept
    back = Receiver(port)
    try:
        msgs = wait_for(lambda: len(back.messages()) >= 2 and back.messages(), timeout=10)
        assert [fields(m, "ORC")[5] for m in msgs] == ["SC", "CA"]
        with hl7.sessions() as s:
            assert {r.status for r in s.scalars(select(Hl7Outbox).where(Hl7Outbox.reference == acc))} == {"sent"}
    finally:
        back.stop()


def test_ack_with_wrong_msa2_is_not_taken_and_ae_stops_retries(hl7, client, auth, receiver):
    receiver.answer = "WRONG_ID"
    acc = _place(client, auth, "MSA-1")
    client.post(f"/api/orders/{acc}/status", json={"action": "arrive"}, headers=auth)

    def row():
        with hl7.sessions() as s:
            r = s.scalar(select(Hl7Outbox).where(Hl7Outbox.reference == acc))
            return r if r is not None and r.attempts >= 2 else None

    r = wait_for(row, timeout=10)
    assert r.status == "pending" and "does not match" in r.last_error
    receiver.answer = "AE"
    r = wait_for(lambda: (x := row()) is not None and x.status == "error" and x, timeout=10)
    assert r.ack_code == "AE"
    receiver.answer = "AA"
    assert client.post(f"/api/hl7/outbox/{r.id}/retry", headers=auth).status_code == 200
    wait_for(lambda: (x := row()) is not None and x.status == "sent", timeout=10)
    assert client.post(f"/api/hl7/outbox/{r.id}/retry", headers=auth).status_code == 409


def test_send_report_result_sends_oru(hl7, client, auth, receiver):
    acc = _place(client, auth, "ORU-1")
    with transaction(hl7.sessions) as s:
        order = find_order(s, acc)
        rows = send_report_result(s, order, "Findings: normal.\nImpression: no bleed | ok", radiologist="Grey^Meredith")
        assert len(rows) == 1
    msgs = wait_for(lambda: receiver.messages("ORU"), timeout=10)
    obr, obx = fields(msgs[0], "OBR"), fields(msgs[0], "OBX")
    assert obr[18] == acc and obr[25] == "F" and obr[32] == "&Grey&Meredith"
    assert obx[2] == "FT" and obx[5] == "Findings: normal.\\.br\\Impression: no bleed \\F\\ ok" and obx[11] == "F"


def test_a_trickling_frame_is_cut_at_the_read_timeout(hl7):
    """A peer sending a byte at a time cannot hold a frame open past the read timeout."""
    data = START + H.build(H.ADT_A01, ctl="SLOW-1")
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", hl7.port), timeout=10) as s:
        reply = b""
        for i in range(len(data)):
            try:
                s.sendall(data[i : i + 1])
            except OSError:
                break
            time.sleep(0.05)
            s.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                reply += s.recv(4096)
            s.setblocking(True)
            if reply.endswith(END):
                break
    assert msa(reply[1:-2])[0] == "AR" and b"read timeout" in reply
    assert time.monotonic() - started < 5  # read timeout is 1 s here
    _still_serving(hl7)


def test_connections_beyond_the_limit_are_closed(config):
    settings = Hl7Settings(port=free_port(), max_connections=1)
    service = Hl7Service(config, settings).start()
    try:
        with socket.create_connection(("127.0.0.1", service.port), timeout=5) as first:
            time.sleep(0.2)
            with socket.create_connection(("127.0.0.1", service.port), timeout=5) as second:
                assert second.recv(10) == b""  # closed at once
            first.sendall(START + H.build(H.ADT_A01, ctl="LIMIT-1") + END)
            reply = b""
            while not reply.endswith(END):
                reply += first.recv(4096)
            assert msa(reply[1:-2]) == ("AA", "LIMIT-1")
    finally:
        service.stop()
        set_settings(None)


def test_latin1_message_is_read_and_answered_in_latin1(hl7):
    ctl = H.control_id()
    raw = H.build(H.ADT_A01, encoding="latin-1", ctl=ctl, charset="8859/1", mrn="LAT-1", family="Müller", given="Zoë")
    reply = send(hl7.port, raw)
    assert msa(reply) == ("AA", ctl) and fields(reply, "MSH")[18] == "8859/1"
    with hl7.sessions() as s:
        p = find_patient(s, "LAT-1")
        assert (p.family_name, p.given_name) == ("Müller", "Zoë")


def test_omg_o19_status_message_carries_ipc_and_tq1(hl7, client, auth, receiver):
    """With ORTHANC_RIS_HL7_STATUS_MESSAGE=OMG^O19 the status goes out in HL7 2.5.1 form."""
    from dataclasses import replace

    set_settings(replace(hl7.settings, status_message="OMG^O19"))
    acc = _place(client, auth, "OMG-1")
    client.post(f"/api/orders/{acc}/status", json={"action": "start"}, headers=auth)
    [msg] = wait_for(lambda: [m for m in receiver.messages("OMG") if acc.encode() in m], timeout=10)
    msh, ipc, tq1, orc = fields(msg, "MSH"), fields(msg, "IPC"), fields(msg, "TQ1"), fields(msg, "ORC")
    assert (msh[9], msh[12], msh[18]) == ("OMG^O19^OMG_O19", "2.5.1", "UNICODE UTF-8")
    assert (
        ipc[1] == acc
        and ipc[5] == "CT"
        and ipc[9] == "CT1"
        and ipc[3] == client.get(f"/api/orders/{acc}", headers=auth).get_json()["study_instance_uid"]
    )
    # The scheduled start as entered (site wall-clock time), with the site's offset.
    assert tq1[7] == hl7_datetime(from_site(datetime(2030, 1, 1, 10, 0))) and tq1[7].startswith("20300101100000")
    assert orc[1] == "SC" and orc[5] == "IP"
