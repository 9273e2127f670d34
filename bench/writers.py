"""Benchmark: orders per second with six concurrent writers, and the errors they met.

Starts the whole system (`orthanc-ris up`, free ports, SQLite unless
ORTHANC_RIS_TEST_DATABASE_URL names a PostgreSQL server, as scripts/with-postgres.sh
does) in a temporary folder and runs the department load of tests/fixtures/load.py
twice in the same process: the reference run with one API client alone, then 4 API
clients + 2 HL7 connections with a modality reporting MPPS and images arriving. Prints
orders placed per second for each, the ratio, and every server error (expected: 0).

    .venv/bin/python bench/writers.py [--seconds 30]
    scripts/with-postgres.sh .venv/bin/python bench/writers.py
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import start_system, stop_system
from tests.e2e.test_e2e_loop import _register
from tests.fixtures.load import Load, illegal_histories


def _run(system, workdir: Path, patients: list[str], seconds: float, seed: int, **writers) -> tuple[Load, float]:
    load = Load(system, workdir, patients, seed)
    elapsed = load.run(seconds, **writers)
    return load, elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30)
    args = ap.parse_args()
    database = "PostgreSQL" if os.environ.get("ORTHANC_RIS_TEST_DATABASE_URL") else "SQLite"
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        system = start_system(tmp / "home", {"ORTHANC_RIS_LOG_LEVEL": "WARNING"})
        try:
            system.add_station("CT1", "CT")
            patients = [f"BENCH-{n}" for n in range(6)]
            for n, mrn in enumerate(patients):
                _register(system, mrn, "Benchley", f"Number{n}")
            one, t1 = _run(
                system, tmp / "one", patients, args.seconds, 1, api_clients=1, hl7_connections=0, others=False
            )
            six, t6 = _run(system, tmp / "six", patients, args.seconds, 2)
            bad = illegal_histories(system, six.api_accessions + list(six.hl7_applied.values()))
        finally:
            stop_system(system)
    r1, r6 = one.orders_placed / t1, six.orders_placed / t6
    errors = one.api_errors + one.hl7_errors + six.api_errors + six.hl7_errors
    print(f"database: {database}, {args.seconds:.0f} s per run")
    print("| writers | orders | orders/s | API answers | HL7 ACKs | MPPS | images | server errors |")
    print("|---|---|---|---|---|---|---|---|")
    for name, load, rate in (("1 API client (reference)", one, r1), ("4 API + 2 HL7 + MPPS + images", six, r6)):
        api = sum(load.api_status.values())
        print(
            f"| {name} | {load.orders_placed} | {rate:.1f} | {api} | {sum(load.hl7_acks.values())} | "
            f"{sum(load.mpps_status.values())} | {load.images} | {len(load.api_errors) + len(load.hl7_errors)} |"
        )
    print(
        f"ratio (6 writers / 1): {r6 / r1:.2f}x; accessions handed out twice: "
        f"{len(six.api_accessions) - len(set(six.api_accessions))}; illegal step histories: {len(bad)}"
    )
    if errors or bad:
        print("errors:", errors[:10], "illegal:", list(bad.items())[:5])
        sys.exit(1)


if __name__ == "__main__":
    main()
