"""Benchmark: ORM^O01 messages per second, from the MLLP socket to worklist-visible.

Starts the whole system (`orthanc-ris up`, SQLite, free ports) in a temporary folder, sends
N new orders over MLLP (one connection, then several in parallel), waits for every ACK, and
checks with dcmtk's findscu that the last order is answered by the worklist. An AA is only
sent after the order and its worklist item are committed, so ACK time is visibility time;
the findscu check proves it.

    .venv/bin/python bench/hl7.py [--messages 500] [--connections 4]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ris_app.clock import site_today
from ris_app.hl7.mllp import MLLPClient
from tests.conftest import start_system, stop_system
from tests.fixtures import hl7_messages as H
from tests.fixtures.hl7_peer import msa
from tests.fixtures.mwl import run_findscu, write_query

TODAY = site_today().strftime("%Y%m%d")


def send_batch(port: int, tag: str, first: int, count: int, latencies: list[float]) -> None:
    with MLLPClient("127.0.0.1", port, 30) as client:
        for i in range(first, first + count):
            data = H.build(
                H.ORM_O01_NW,
                ctl=f"B{tag}{i}",
                mrn=f"BENCH-{i % 50}",
                acc=f"B{tag}{i:07d}",
                placer=f"BP{tag}{i}",
                start=f"{TODAY}100000",
                station="CT1",
            )
            t0 = time.perf_counter()
            code, _ = msa(client.send(data))
            latencies.append(time.perf_counter() - t0)
            if code != "AA":
                raise RuntimeError(f"message {i} answered {code}")


def run(system, tmp: Path, messages: int, connections: int, tag: str) -> dict:
    latencies: list[float] = []
    per = messages // connections
    t0 = time.perf_counter()
    threads = [
        threading.Thread(target=send_batch, args=(system.hl7_port, tag, c * per, per, latencies))
        for c in range(connections)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    acked = time.perf_counter() - t0
    last = f"B{tag}{(connections - 1) * per + per - 1:07d}"
    answers = run_findscu(
        system.dicom_port, system.aet, write_query(tmp / f"q{tag}.dcm", AccessionNumber=last), tmp / f"r{tag}"
    )
    visible = time.perf_counter() - t0
    assert [a.AccessionNumber for a in answers] == [last], "last order not in the worklist"
    latencies.sort()
    return {
        "connections": connections,
        "messages": per * connections,
        "acked_s": acked,
        "visible_s": visible,
        "rate": per * connections / visible,
        "p50_ms": statistics.median(latencies) * 1000,
        "p95_ms": latencies[int(len(latencies) * 0.95)] * 1000,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=500)
    ap.add_argument("--connections", type=int, default=4)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        system = start_system(tmp / "home", {"ORTHANC_RIS_LOG_LEVEL": "WARNING"})
        try:
            results = [run(system, tmp, args.messages, 1, "S"), run(system, tmp, args.messages, args.connections, "P")]
        finally:
            stop_system(system)
    print(
        "| connections | ORM^O01 messages | all ACKed (s) | last one in findscu (s) | messages/s | ACK p50 (ms) | ACK p95 (ms) |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['connections']} | {r['messages']} | {r['acked_s']:.2f} | {r['visible_s']:.2f} | {r['rate']:.0f} | "
            f"{r['p50_ms']:.1f} | {r['p95_ms']:.1f} |"
        )


if __name__ == "__main__":
    main()
