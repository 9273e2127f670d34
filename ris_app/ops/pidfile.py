"""The pid file of `orthanc-ris up`: who supervises a data folder, and which parts it started.

`<data folder>/orthanc-ris.pid` holds one JSON line for the supervisor, then one per part as
it starts: name, pid, the process's start time (clock ticks since boot, field 22 of
/proc/<pid>/stat) and the boot id, so that a pid the kernel has since handed to another
process is never taken for ours. The supervisor holds an flock on the file while it lives;
the kernel drops the lock when it dies, however it dies (SIGKILL, the OOM killer). So at the
next `up`: a held lock means a live supervisor on this folder (refuse); a free lock means the
parts listed are left from a run that did not stop in order (end those still alive).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger("ris_app.ops.pidfile")

PID_FILE = "orthanc-ris.pid"
SUPERVISOR = "supervisor"
GRACE = 15.0  # seconds a part may take to stop after SIGTERM, as in the supervisor's own stop


class AlreadyRunning(RuntimeError):
    pass


@dataclass(frozen=True)
class Record:
    name: str
    pid: int
    start: int  # clock ticks after boot
    boot: str
    cmdline: str = ""


@dataclass(frozen=True)
class _Stat:
    state: str
    pgrp: int
    session: int
    start: int


def boot_id() -> str:
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def _stat(pid: int) -> _Stat | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) is in parentheses and may hold spaces or ')': cut after the last.
    fields = raw[raw.rindex(")") + 2 :].split()
    return _Stat(state=fields[0], pgrp=int(fields[2]), session=int(fields[3]), start=int(fields[19]))


def start_time(pid: int) -> int | None:
    """The start time of a live (not zombie) process, None when there is none."""
    st = _stat(pid)
    return None if st is None or st.state in ("Z", "X") else st.start


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except (FileNotFoundError, ProcessLookupError):
        return ""


def describe(name: str, pid: int) -> Record:
    """What identifies process `pid` for as long as it lives (the command line only informs)."""
    cmdline = _cmdline(pid)
    for _ in range(20):  # Popen returns while exec still sets up the new arguments
        if cmdline or start_time(pid) is None:
            break
        time.sleep(0.01)
        cmdline = _cmdline(pid)
    return Record(name=name, pid=pid, start=start_time(pid) or 0, boot=boot_id(), cmdline=cmdline)


def leftovers(record: Record) -> list[tuple[int, int]]:
    """(pid, start time) of every live process of a recorded part: the part itself and what it
    started (gunicorn's workers). Parts run in their own session, so their children share its
    id; a pid or session id still in use is never handed out again, and a member started
    before the part cannot be its child."""
    if record.boot != boot_id():
        return []  # a reboot ended them all
    leader = _stat(record.pid)
    if leader is not None and leader.start != record.start:
        return []  # the pid belongs to another process now
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        st = _stat(int(entry.name))
        if st is None or st.state in ("Z", "X"):
            continue
        ours = st.start == record.start if int(entry.name) == record.pid else st.start >= record.start
        if ours and st.session == record.pid and st.pgrp == record.pid:
            found.append((int(entry.name), st.start))
    return found


def _alive(pid: int, start: int) -> bool:
    return start_time(pid) == start


def _signal(pid: int, start: int, signum: int) -> None:
    if _alive(pid, start):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def _wait_gone(procs: list[tuple[int, int]], timeout: float) -> list[tuple[int, int]]:
    deadline = time.monotonic() + timeout
    while True:
        procs = [p for p in procs if _alive(*p)]
        if not procs or time.monotonic() >= deadline:
            return procs
        time.sleep(0.1)


def end_stale(records: list[Record], grace: float = GRACE, say: Callable[[str], None] = print) -> list[str]:
    """End what is left alive of the recorded parts: SIGTERM, then SIGKILL after `grace`.
    Returns the names of the parts that had to be ended."""
    victims: list[tuple[int, int]] = []
    ended = []
    for rec in records:
        if rec.name == SUPERVISOR:
            continue
        procs = leftovers(rec)
        if not procs:
            continue
        shown = rec.pid if any(pid == rec.pid for pid, _ in procs) else procs[0][0]
        message = f"ending stale part {rec.name} (pid {shown}) left by an earlier run"
        log.warning("%s", message)
        say(message)
        ended.append(rec.name)
        victims += procs
    for pid, start in victims:
        _signal(pid, start, signal.SIGTERM)
    stubborn = _wait_gone(victims, grace)
    for pid, start in stubborn:
        log.warning("stale pid %s did not stop within %.0f s: killing it", pid, grace)
        _signal(pid, start, signal.SIGKILL)
    _wait_gone(stubborn, 5.0)
    return ended


def _parse(text: str) -> list[Record]:
    records = []
    for line in text.splitlines():
        try:
            records.append(Record(**json.loads(line)))
        except (ValueError, TypeError):
            continue  # a line cut short by a death mid-write
    return records


def _read(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


class PidFile:
    """The claim of one supervisor on a data folder (see the module's docstring)."""

    def __init__(self, path: Path, fd: int, earlier: list[Record]):
        self.path = path
        self._fd = fd
        self.earlier = earlier  # what the last run left in the file

    @classmethod
    def claim(cls, home: Path) -> PidFile:
        """Lock the data folder's pid file and write this process into it as the supervisor.
        Raises AlreadyRunning when another live supervisor holds it."""
        path = home / PID_FILE
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = next((r for r in _parse(_read(fd)) if r.name == SUPERVISOR), None)
                os.close(fd)
                pid = f" (pid {holder.pid})" if holder else ""
                raise AlreadyRunning(
                    f"orthanc-ris up is already running for the data folder {home}{pid}: "
                    "stop it first (SIGTERM to it, or systemctl stop)"
                ) from None
            # The supervisor before us may have removed the file between our open and our lock.
            try:
                if os.stat(path).st_ino == os.fstat(fd).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        pids = cls(path, fd, _parse(_read(fd)))
        os.ftruncate(fd, 0)
        pids.record(SUPERVISOR, os.getpid())
        return pids

    def record(self, name: str, pid: int) -> None:
        """Add a started part: one line in a single write, so a death leaves whole lines."""
        os.lseek(self._fd, 0, os.SEEK_END)
        os.write(self._fd, (json.dumps(asdict(describe(name, pid))) + "\n").encode())

    def release(self) -> None:
        """Remove the file (every part is stopped) and drop the lock."""
        if self._fd < 0:
            return
        try:
            if os.stat(self.path).st_ino == os.fstat(self._fd).st_ino:
                self.path.unlink()
        except FileNotFoundError:
            pass
        os.close(self._fd)
        self._fd = -1

    def __enter__(self) -> PidFile:
        return self

    def __exit__(self, *exc) -> None:
        self.release()
