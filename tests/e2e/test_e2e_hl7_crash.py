"""Nothing lost, nothing doubled: HL7 ORM^O01 new orders sent over two MLLP connections at
once while the whole system (`orthanc-ris up`) is SIGKILLed at random moments. After each
restart the test re-sends every message it got no ACK for (same bytes, same MSH-10), as an
interface engine does, and a few it did get an ACK for. In the end every message is applied
exactly once: one order per accession, no other orders, one 'processed' row per control ID,
and every repeat of an acknowledged message answered AA as a duplicate."""

from __future__ import annotations

import os
import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import date

import pytest

from ris_app.hl7.mllp import MLLPClient
from tests.conftest import _require_debian_tools, start_system, stop_system
from tests.e2e.test_e2e_loop import _register
from tests.e2e.test_e2e_signing_crash import _kill_everything
from tests.fixtures import hl7_messages as H
from tests.fixtures.hl7_peer import fields

pytestmark = [pytest.mark.e2e, pytest.mark.postgres_e2e]
PATIENTS = 4
KILLS = 3
BURST = 80  # new orders per round: enough that the kill lands mid-burst
DUPLICATES = 3  # acknowledged messages sent again each round
CONNECTIONS = 2
DAY = date.today()  # the orders' day (noon, site time): the worklist of that day lists them all


@dataclass
class Msg:
    ctl: str
    acc: str
    mrn: str
    raw: bytes
    acked: bool = False


@dataclass
class Round:
    acked: int = 0
    unacked: int = 0
    refused: list[str] = field(default_factory=list)  # control IDs answered other than AA
    repeats: list[tuple[str, str, str]] = field(default_factory=list)  # (ctl, MSA-1, MSA-3) of repeats


def _messages(seed: int, first: int, count: int) -> list[Msg]:
    out = []
    for n in range(first, first + count):
        mrn, ctl, acc = f"HLC-{n % PATIENTS}", f"CRASH{seed}-{n}", f"HLC{n:05d}"
        raw = H.build(
            H.ORM_O01_NW,
            ctl=ctl,
            mrn=mrn,
            family="Crashley",
            given=f"Number{n % PATIENTS}",
            acc=acc,
            placer=f"PL-{acc}",
            start=f"{DAY:%Y%m%d}120000",
        )
        out.append(Msg(ctl, acc, mrn, raw))
    return out


def _send_all(port: int, work: list[tuple[Msg, bool]], result: Round, lock: threading.Lock) -> None:
    """Send each message in turn on one connection; stop at the first one without an answer
    (the system died under it: that one and the rest stay unacknowledged)."""
    try:
        with MLLPClient("127.0.0.1", port, timeout=15) as client:
            for msg, repeat in work:
                ack = client.send(msg.raw)
                msa = [*fields(ack, "MSA"), "", "", ""]
                with lock:
                    assert msa[2] == msg.ctl, ack
                    if repeat:
                        result.repeats.append((msg.ctl, msa[1], msa[3]))
                    elif msa[1] == "AA":
                        msg.acked = True
                    else:
                        result.refused.append(msg.ctl)
    except OSError:  # ConnectionError, a reset, a timeout, nobody listening: no answer
        pass


def _burst(system, work: list[tuple[Msg, bool]], delay: float | None) -> Round:
    """Send `work` over CONNECTIONS connections at once; SIGKILL the whole system after
    `delay` seconds (None: let it live) and wait until it is gone."""
    result, lock = Round(), threading.Lock()
    killer = threading.Timer(delay, _kill_everything, (system.proc.pid,)) if delay is not None else None
    senders = [
        threading.Thread(target=_send_all, args=(system.hl7_port, work[i::CONNECTIONS], result, lock))
        for i in range(CONNECTIONS)
    ]
    if killer:
        killer.start()
    for t in senders:
        t.start()
    for t in senders:
        t.join(120)
    if killer:
        killer.join()
        system.proc.wait(30)
    fresh = [m for m, repeat in work if not repeat]
    result.acked = sum(m.acked for m in fresh)
    result.unacked = len(fresh) - result.acked
    return result


def _round_work(rng: random.Random, sent: list[Msg], new: list[Msg]) -> list[tuple[Msg, bool]]:
    """What an interface engine sends now: everything not acknowledged yet, a few repeats of
    acknowledged messages, then the new orders, in one shuffled queue."""
    acked = [m for m in sent if m.acked]
    work = [(m, False) for m in sent if not m.acked]
    work += [(m, True) for m in rng.sample(acked, min(DUPLICATES, len(acked)))]
    rng.shuffle(work)
    return work + [(m, False) for m in new]


def test_hl7_orders_are_applied_exactly_once_across_kills(tmp_path):
    _require_debian_tools()
    # HL7_CRASH_SEED=<seed> replays a run's kill moments and queues (not its exact timing).
    seed = int(os.environ.get("HL7_CRASH_SEED") or random.randrange(10**6))
    rng = random.Random(seed)
    print(f"\nseed {seed}")
    home = tmp_path / "home"
    extra: dict[str, str] = {}
    system = start_system(home, extra)
    # PostgreSQL pass: restarts keep the databases the first start made (it would make fresh ones).
    extra |= {
        k: system.env[k] for k in ("ORTHANC_RIS_DATABASE_URL", "ORTHANC_RIS_ORTHANC_INDEX_URL") if k in system.env
    }
    sent: list[Msg] = []
    rounds: list[Round] = []
    try:
        for n in range(PATIENTS):
            _register(system, f"HLC-{n}", "Crashley", f"Number{n}")

        delays = [rng.uniform(0.2, 2.0) for _ in range(KILLS)]  # drawn first: a seed replays them
        for r, delay in enumerate(delays):
            new = _messages(seed, len(sent), BURST)
            work = _round_work(rng, sent, new)
            resent = sum(not m.acked for m in sent)
            sent += new
            rounds.append(_burst(system, work, delay))
            print(
                f"round {r + 1}: kill after {delay:.2f} s; {BURST} new, {resent} re-sent, "
                f"{len(work) - BURST - resent} repeats ({len(rounds[-1].repeats)} answered); "
                f"acked {rounds[-1].acked}, unacked {rounds[-1].unacked}"
            )
            system = start_system(home, extra)

        # The last restart stays up: the engine re-sends until everything is acknowledged.
        for _ in range(3):
            if all(m.acked for m in sent):
                break
            rounds.append(_burst(system, _round_work(rng, sent, []), None))
        rounds.append(_burst(system, _round_work(rng, sent, []), None))  # repeats only, now
        print(f"final: {sum(m.acked for m in sent)} of {len(sent)} acked")

        refused = [ctl for r in rounds for ctl in r.refused]
        assert not refused, f"seed {seed}: answered other than AA: {refused}"
        assert all(m.acked for m in sent), f"seed {seed}: never acknowledged: {[m.ctl for m in sent if not m.acked]}"

        # Every repeat of an acknowledged message: AA, and says it was a duplicate.
        repeats = [rep for r in rounds for rep in r.repeats]
        assert repeats
        bad = [rep for rep in repeats if rep[1] != "AA" or "duplicate" not in rep[2]]
        assert not bad, f"seed {seed}: repeats not answered as duplicates: {bad}"

        # One order per accession, the right patient; no other orders on the day.
        for m in sent:
            r = system.api("GET", f"/api/orders/{m.acc}")
            assert r.status_code == 200, (seed, m.acc, r.text)
            assert r.json()["patient"]["mrn"] == m.mrn, (seed, m.acc, r.json()["patient"])
        items = system.api("GET", f"/api/worklist?date={DAY.isoformat()}").json()["items"]
        per_acc = Counter(i["accession_number"] for i in items)
        assert per_acc == Counter(m.acc for m in sent), f"seed {seed}: orders {per_acc}"

        # The message log: exactly one 'processed' row per control ID, none of anything else.
        log = system.api("GET", "/api/hl7/messages?limit=1000").json()["items"]
        assert len(log) < 1000
        processed = Counter(row["control_id"] for row in log if row["status"] == "processed")
        assert processed == Counter(m.ctl for m in sent), f"seed {seed}: processed rows {processed}"
        print("message log:", dict(Counter(row["status"] for row in log)))
    finally:
        stop_system(system)
