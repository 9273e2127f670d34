"""`orthanc-ris up` as an operator meets it: starts, names a failing part, stops cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TOKEN, free_port, start_system, stop_system, wait_for

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
