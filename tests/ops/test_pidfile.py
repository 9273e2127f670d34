"""The pid file of `orthanc-ris up`, with real processes: who holds a data folder, which
parts a killed supervisor left, and that a pid the kernel gave to another process is left alone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest

from ris_app.ops.pidfile import (
    PID_FILE,
    SUPERVISOR,
    AlreadyRunning,
    PidFile,
    Record,
    boot_id,
    describe,
    end_stale,
    leftovers,
    start_time,
)
from tests.conftest import wait_for

# A supervisor that records one part (a process in its own session, as the real parts are),
# says so, and waits to be killed.
_SUPERVISOR = """
import subprocess, sys, time
from pathlib import Path
from ris_app.ops.pidfile import PidFile
pids = PidFile.claim(Path(sys.argv[1]))
part = subprocess.Popen(sys.argv[3:], start_new_session=True, stdout=subprocess.DEVNULL, cwd=sys.argv[1])
pids.record(sys.argv[2], part.pid)
print(part.pid, flush=True)
time.sleep(600)
"""


def killed_supervisor(home, name: str, *part_argv: str) -> int:
    """Run a supervisor of one part, SIGKILL it, and return the pid of the part it left."""
    sup = subprocess.Popen(
        [sys.executable, "-c", _SUPERVISOR, str(home), name, *part_argv], stdout=subprocess.PIPE, text=True
    )
    part = int(sup.stdout.readline())
    sup.kill()
    sup.wait()
    return part


@pytest.fixture
def sleeper():
    procs = []

    def start(*argv: str) -> subprocess.Popen:
        p = subprocess.Popen(list(argv or ("sleep", "60")), start_new_session=True)
        procs.append(p)
        return p

    yield start
    for p in procs:
        p.kill()
        p.wait()


def test_the_claim_writes_the_supervisor_and_its_parts_and_is_removed_on_release(tmp_path, sleeper):
    part = sleeper()
    with PidFile.claim(tmp_path) as pids:
        pids.record("ris", part.pid)
        lines = [json.loads(line) for line in (tmp_path / PID_FILE).read_text().splitlines()]
        assert [(r["name"], r["pid"]) for r in lines] == [(SUPERVISOR, os.getpid()), ("ris", part.pid)]
        assert lines[1]["start"] == start_time(part.pid) and "sleep 60" in lines[1]["cmdline"]
    assert not (tmp_path / PID_FILE).exists()
    with PidFile.claim(tmp_path) as pids:
        assert pids.earlier == []  # an orderly exit leaves nothing to end


def test_a_live_supervisor_on_the_same_folder_is_refused(tmp_path):
    with PidFile.claim(tmp_path):
        with pytest.raises(
            AlreadyRunning, match=f"already running for the data folder {tmp_path} \\(pid {os.getpid()}\\)"
        ):
            PidFile.claim(tmp_path)
        assert (tmp_path / PID_FILE).exists()  # the refused one took nothing away


def test_a_killed_supervisor_frees_the_folder_and_its_parts_are_ended(tmp_path):
    part = killed_supervisor(tmp_path, "orthanc", "sleep", "60")
    assert start_time(part) is not None  # without the parent-death signal it outlives its supervisor
    said: list[str] = []
    with PidFile.claim(tmp_path) as pids:
        assert [r.name for r in pids.earlier] == [SUPERVISOR, "orthanc"]
        assert end_stale(pids.earlier, grace=5, say=said.append) == ["orthanc"]
    assert said == [f"ending stale part orthanc (pid {part}) left by an earlier run"]
    assert start_time(part) is None


def test_a_recycled_pid_is_not_taken_for_a_part(tmp_path, sleeper):
    other = sleeper()  # holds the pid the record names, but started at another time
    rec = describe("orthanc", other.pid)
    for stale in (replace(rec, start=rec.start - 1), replace(rec, boot="another-boot")):
        assert leftovers(stale) == []
        assert end_stale([stale], grace=1, say=pytest.fail) == []
    assert other.poll() is None
    assert leftovers(rec) == [(other.pid, rec.start)]


def test_a_dead_part_needs_nothing(tmp_path, sleeper):
    gone = sleeper("true")
    gone.wait()
    assert end_stale([Record("ris", gone.pid, 1, boot_id())], say=pytest.fail) == []


def test_the_children_of_a_part_are_ended_even_when_the_part_is_gone(tmp_path, sleeper):
    # A gunicorn master whose worker lives on: the worker shares the part's session.
    pidfile = tmp_path / "child"
    part = sleeper("sh", "-c", f"sleep 60 & echo $! > {pidfile}.tmp; mv {pidfile}.tmp {pidfile}; wait")
    child = int(wait_for(lambda: pidfile.exists() and pidfile.read_text().strip()))
    rec = describe("ris", part.pid)
    part.kill()
    part.wait()
    assert [pid for pid, _ in leftovers(rec)] == [child]
    assert end_stale([rec], grace=5, say=lambda _: None) == ["ris"]
    assert start_time(child) is None


def test_a_part_deaf_to_sigterm_is_killed_after_the_grace(tmp_path):
    deaf = "import signal, time, pathlib; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    deaf += "pathlib.Path('deaf').touch(); time.sleep(60)"
    part = killed_supervisor(tmp_path, "orthanc", sys.executable, "-c", deaf)
    wait_for((tmp_path / "deaf").exists)
    with PidFile.claim(tmp_path) as pids:
        os.kill(part, signal.SIGTERM)
        time.sleep(0.3)
        assert start_time(part) is not None
        assert end_stale(pids.earlier, grace=0.5, say=lambda _: None) == ["orthanc"]
    assert start_time(part) is None
