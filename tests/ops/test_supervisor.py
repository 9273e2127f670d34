"""`orthanc-ris up` as an operator meets it: starts, names a failing part, stops cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from ris_app.ops.pidfile import PID_FILE, start_time
from tests.conftest import TOKEN, free_port, start_system, stop_system, wait_for
from tests.ops.test_pidfile import killed_supervisor

pytestmark = pytest.mark.e2e


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return ""


def test_sigterm_stops_every_part(tmp_path):
    system = start_system(tmp_path / "home")
    parts = _children(system.proc.pid)
    assert any("Orthanc" in _cmdline(p) for p in parts) and any("gunicorn" in _cmdline(p) for p in parts)
    stop_system(system)
    assert system.proc.returncode == 0
    for pid in parts:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()


def test_a_dying_part_is_named_and_the_rest_stopped(tmp_path):
    system = start_system(tmp_path / "home")
    orthanc = next(p for p in _children(system.proc.pid) if "Orthanc" in _cmdline(p))
    gunicorn = next(p for p in _children(system.proc.pid) if "gunicorn" in _cmdline(p))
    os.kill(orthanc, signal.SIGKILL)
    system.proc.wait(30)
    assert system.proc.returncode == 1
    log = (system.home / "up.log").read_text()
    assert "orthanc stopped unexpectedly" in log
    wait_for(lambda: not Path(f"/proc/{gunicorn}").exists(), timeout=20)


def test_a_taken_port_is_reported(tmp_path):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    env = {
        **os.environ,
        "ORTHANC_RIS_HOME": str(tmp_path / "h"),
        "ORTHANC_RIS_HTTP_PORT": str(free_port()),
        "ORTHANC_RIS_ORTHANC_HTTP_PORT": str(port),
        "ORTHANC_RIS_DICOM_PORT": str(free_port()),
        "ORTHANC_RIS_API_TOKEN": TOKEN,
    }
    env.pop("ORTHANC_RIS_DATABASE_URL", None)
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "orthanc-ris"), "up", "--start-timeout", "20"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    busy.close()
    assert proc.returncode == 1
    assert "orthanc" in proc.stderr and ("exited" in proc.stderr or "did not answer" in proc.stderr)


def test_help_lists_every_command():
    out = subprocess.run(
        [str(Path(sys.executable).parent / "orthanc-ris"), "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in ("up", "migrate", "create-user", "settings", "orthanc-config", "hl7-listener"):
        assert command in out


def test_a_taken_hl7_port_is_reported(tmp_path):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    env = {
        **os.environ,
        "ORTHANC_RIS_HOME": str(tmp_path / "h"),
        "ORTHANC_RIS_HTTP_PORT": str(free_port()),
        "ORTHANC_RIS_ORTHANC_HTTP_PORT": str(free_port()),
        "ORTHANC_RIS_DICOM_PORT": str(free_port()),
        "ORTHANC_RIS_HL7_PORT": str(port),
        "ORTHANC_RIS_API_TOKEN": TOKEN,
    }
    env.pop("ORTHANC_RIS_DATABASE_URL", None)
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "orthanc-ris"), "up", "--start-timeout", "30"],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    busy.close()
    assert proc.returncode == 1
    assert f"hl7 cannot start: 127.0.0.1:{port} is in use" in proc.stderr


def test_the_hl7_listener_is_a_supervised_part(tmp_path):
    system = start_system(tmp_path / "home")
    try:
        listener = next(p for p in _children(system.proc.pid) if "hl7-listener" in _cmdline(p))
        os.kill(listener, signal.SIGKILL)
        system.proc.wait(30)
        assert system.proc.returncode == 1
        assert "hl7 stopped unexpectedly" in (system.home / "up.log").read_text()
    finally:
        stop_system(system)


PORTS = (
    "ORTHANC_RIS_HTTP_PORT",
    "ORTHANC_RIS_ORTHANC_HTTP_PORT",
    "ORTHANC_RIS_DICOM_PORT",
    "ORTHANC_RIS_VIEWER_PORT",
    "ORTHANC_RIS_HL7_PORT",
    "ORTHANC_RIS_MPPS_PORT",
)


def _descendants(pid: int) -> list[int]:
    kids = _children(pid)
    return kids + [g for k in kids for g in _descendants(k)]


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a TIME_WAIT is no listener
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_the_parts_die_with_a_killed_supervisor(tmp_path):
    system = start_system(tmp_path / "home")
    ports = [int(system.env[k]) for k in PORTS]
    try:
        parts = _descendants(system.proc.pid)  # gunicorn's workers too
        assert len(parts) >= 8 and not any(_port_free(p) for p in ports)
        system.proc.kill()  # as the OOM killer would: no chance to stop anything
        system.proc.wait()
        wait_for(lambda: all(start_time(p) is None for p in parts), timeout=15)
        assert all(_port_free(p) for p in ports)
        assert (system.home / PID_FILE).exists()  # left for the next `up`
        # On the same ports: nothing of the earlier run answers its health checks.
        offset = len((system.home / "up.log").read_bytes())
        again = start_system(system.home, extra_env={k: system.env[k] for k in PORTS})
        assert again.api("GET", "/api/health").status_code == 200
        stop_system(again)
        assert "stale part" not in (system.home / "up.log").read_bytes()[offset:].decode(errors="replace")
    finally:
        stop_system(system)


def test_the_next_up_ends_parts_an_earlier_run_left(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    hl7_port = free_port()
    listener = (
        "import socket, time; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
        f"s.bind(('127.0.0.1', {hl7_port})); s.listen(); time.sleep(600)"
    )
    # A supervisor killed with a part that lived on: an HL7 listener holding the port, which
    # would make `up` refuse to start ("hl7 cannot start: ... is in use").
    stale = killed_supervisor(home, "hl7", sys.executable, "-c", listener)
    wait_for(lambda: not _port_free(hl7_port))
    system = start_system(home, extra_env={"ORTHANC_RIS_HL7_PORT": str(hl7_port)})
    try:
        assert f"ending stale part hl7 (pid {stale}) left by an earlier run" in (home / "up.log").read_text()
        assert start_time(stale) is None
        assert any("hl7-listener" in _cmdline(p) for p in _children(system.proc.pid))
        assert not _port_free(hl7_port)  # the new listener's
    finally:
        stop_system(system)


def test_a_second_up_on_the_same_data_folder_is_refused(tmp_path):
    system = start_system(tmp_path / "home")
    try:
        second = subprocess.run(
            [str(Path(sys.executable).parent / "orthanc-ris"), "up"],
            env=system.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1
        home = system.home.resolve()
        assert f"already running for the data folder {home} (pid {system.proc.pid})" in second.stderr
        assert system.proc.poll() is None
        assert system.api("GET", "/api/health").status_code == 200
    finally:
        stop_system(system)
    assert system.proc.returncode == 0
    assert not (system.home / PID_FILE).exists()  # an orderly stop removes it
