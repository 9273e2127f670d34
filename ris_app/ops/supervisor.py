"""`orthanc-ris up`: start the parts, wait until each is healthy, watch them, stop them.

Each part is a child process with a health URL. If one dies, the others are stopped and
the exit names the part and its exit status; SIGINT/SIGTERM stop all parts cleanly.

Each part runs in its own session, so a Ctrl-C at the terminal reaches the supervisor only
and the parts stop in order, with a grace period. Each also gets SIGTERM from the kernel when
the supervisor dies however it dies (Linux's parent-death signal): no part outlives it
holding its ports. What a SIGTERM does not end, the next `up` finds in the pid file
(ris_app/ops/pidfile.py) and ends.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from ris_app.config import Config
from ris_app.ops.pidfile import PidFile
from ris_app.orthanc import config as orthanc_config

log = logging.getLogger("ris_app.ops.supervisor")


@dataclass
class Part:
    name: str
    argv: list[str]
    health_url: str | None
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    listens: str = ""
    proc: subprocess.Popen | None = None
    health_tcp: tuple[str, int] | None = None  # healthy once this accepts a connection


class PartFailed(RuntimeError):
    pass


# Loaded here, not in the forked child: only async-signal-safe calls are sound between fork and exec.
_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _die_with(parent: int):
    """A preexec_fn: the child gets SIGTERM when `parent` dies. The setting survives exec (our
    parts are no setuid binaries) but not fork, so gunicorn's workers instead see their
    master go (gunicorn checks its parent) and Orthanc has no children.

    preexec_fn is unsafe once threads run: the supervisor starts none (requests, SQLAlchemy
    and logging here run in the main thread), and the signal follows the thread that forked,
    which is the main one, alive as long as the supervisor."""

    def preexec() -> None:
        if _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent:  # it died before prctl took effect
            os._exit(1)

    return preexec


def child_env(cfg: Config) -> dict[str, str]:
    """Environment shared by every part: resolved settings, so all agree on secrets."""
    env = dict(os.environ)
    env.update(
        {
            "ORTHANC_RIS_HOME": str(cfg.home),
            "ORTHANC_RIS_DATABASE_URL": cfg.database_url,
            "ORTHANC_RIS_API_TOKEN": cfg.api_token,
            "ORTHANC_RIS_PLUGIN_TOKEN": cfg.plugin_token,
            "ORTHANC_RIS_SECRET_KEY": cfg.secret_key,
            "ORTHANC_RIS_ORTHANC_USERNAME": cfg.orthanc_username,
            "ORTHANC_RIS_ORTHANC_PASSWORD": cfg.orthanc_password,
            "ORTHANC_RIS_HTTP_PORT": str(cfg.http_port),
            "ORTHANC_RIS_ORTHANC_HTTP_PORT": str(cfg.orthanc_http_port),
            "ORTHANC_RIS_DICOM_PORT": str(cfg.dicom_port),
            "ORTHANC_RIS_AET": cfg.aet,
            "ORTHANC_RIS_MPPS_PORT": str(cfg.mpps_port),
            "ORTHANC_RIS_MPPS_AET": cfg.mpps_aet,
            # DCMTK (inside Orthanc) reads this: without it every C-STORE waits on Nagle.
            "TCP_NODELAY": "1",
        }
    )
    return env


def _stations_give_hosts(cfg: Config) -> bool:
    """Orthanc's `DicomCheckModalityHost`, from the stations table as it is at start-up."""
    from ris_app.db import make_engine, make_sessionmaker
    from ris_app.orthanc.modalities import checks_hosts

    engine = make_engine(cfg.database_url)
    try:
        with make_sessionmaker(engine)() as s:
            return checks_hosts(s)
    finally:
        engine.dispose()


def parts(cfg: Config) -> list[Part]:
    env = child_env(cfg)
    conf_path = orthanc_config.write(cfg, check_hosts=_stations_give_hosts(cfg))
    bindir = Path(sys.executable).parent
    gunicorn = str(bindir / "gunicorn") if (bindir / "gunicorn").exists() else "gunicorn"
    return [
        Part(
            name="ris",
            argv=[
                gunicorn,
                "--workers",
                str(cfg.workers),
                "--threads",
                "4",
                "--worker-class",
                "gthread",
                "--bind",
                f"{cfg.http_host}:{cfg.http_port}",
                "--timeout",
                "60",
                "ris_app.wsgi:app",
            ],
            health_url=f"http://127.0.0.1:{cfg.http_port}/api/health",
            env=env,
            listens=f"RIS pages and REST API  http://{cfg.http_host}:{cfg.http_port}/",
        ),
        Part(
            name="orthanc",
            argv=[cfg.orthanc_binary, str(conf_path)],
            health_url=f"{cfg.orthanc_url}/system",
            env=env,
            cwd=cfg.home / "orthanc",
            listens=(
                f"Orthanc REST/Explorer  {cfg.orthanc_url}/app/explorer.html\n"
                f"  DICOM (C-STORE, MWL)   AE {cfg.aet} port {cfg.dicom_port}"
            ),
        ),
        Part(
            # OHIF and the Orthanc Explorer proxy, behind the RIS login (ris_app/viewer.py).
            name="viewer",
            argv=[
                gunicorn,
                "--workers",
                "1",
                "--threads",
                "16",
                "--worker-class",
                "gthread",
                "--bind",
                f"{cfg.http_host}:{cfg.viewer_port}",
                "--timeout",
                "300",
                "ris_app.viewer.wsgi:app",
            ],
            health_url=f"http://127.0.0.1:{cfg.viewer_port}/healthz",
            env={**env, "ORTHANC_RIS_VIEWER_PORT": str(cfg.viewer_port)},
            listens=f"Viewer (OHIF, Explorer) http://{cfg.http_host}:{cfg.viewer_port}/",
        ),
        _hl7_part(env),
        *tracking_parts(cfg, env, bindir),
    ]


def tracking_parts(cfg: Config, env: dict[str, str], bindir: Path) -> list[Part]:
    """The MPPS SCP and the sync worker (Orthanc modifications, reconciliation)."""
    cli = str(bindir / "orthanc-ris") if (bindir / "orthanc-ris").exists() else "orthanc-ris"
    mpps_host = "127.0.0.1" if cfg.mpps_host in ("0.0.0.0", "::", "") else cfg.mpps_host
    return [
        Part(
            name="mpps-scp",
            argv=[cli, "mpps-scp"],
            health_url=None,
            env=env,
            health_tcp=(mpps_host, cfg.mpps_port),
            listens=f"MPPS SCP               AE {cfg.mpps_aet} port {cfg.mpps_port}",
        ),
        Part(
            name="sync-worker",
            argv=[cli, "sync-worker"],
            health_url=None,
            env=env,
            listens=f"sync worker            reconciles every {cfg.reconcile_seconds:.0f} s",
        ),
    ]


def _hl7_part(env: dict[str, str]) -> Part:
    from ris_app.hl7.settings import Hl7Settings

    h = Hl7Settings.from_env(env)
    return Part(
        name="hl7",
        argv=[sys.executable, "-m", "ris_app.ops.cli", "hl7-listener"],
        health_url=None,
        health_tcp=(h.connect_host, h.port),
        env=env,
        listens=f"HL7 MLLP listener      {h.host}:{h.port}",
    )


def _tcp_accepts(address: tuple[str, int]) -> bool:
    import socket

    try:
        with socket.create_connection(address, timeout=1):
            return True
    except OSError:
        return False


def _wait_healthy(part: Part, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if part.proc is not None and part.proc.poll() is not None:
            raise PartFailed(f"{part.name} exited with status {part.proc.returncode} while starting")
        if part.health_tcp is not None:
            if _tcp_accepts(part.health_tcp):
                return
            time.sleep(0.2)
            continue
        if part.health_url is None:
            return
        try:
            r = requests.get(part.health_url, timeout=2)
            if r.status_code < 500 or part.name == "ris":
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    target = part.health_url or (f"{part.health_tcp[0]}:{part.health_tcp[1]}" if part.health_tcp else "")
    raise PartFailed(f"{part.name} did not answer {target} within {timeout:.0f} s")


def _stop(all_parts: list[Part], grace: float = 15.0) -> None:
    for part in reversed(all_parts):
        if part.proc is not None and part.proc.poll() is None:
            part.proc.terminate()
    deadline = time.monotonic() + grace
    for part in reversed(all_parts):
        if part.proc is None:
            continue
        try:
            part.proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %.0f s: killing it", part.name, grace)
            part.proc.kill()
            part.proc.wait()


def run(cfg: Config, *, start_timeout: float = 60.0, pids: PidFile | None = None) -> int:
    """Start every part and supervise until a signal or a failure. Returns the exit code.
    Each started part is written to `pids`, the data folder's pid file."""
    stopping = {"signal": None}

    def _on_signal(signum, _frame):
        stopping["signal"] = signum

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    all_parts = parts(cfg)
    started: list[Part] = []
    try:
        for part in all_parts:
            log.info("starting %s", part.name)
            if part.health_tcp is not None and _tcp_accepts(part.health_tcp):
                # Someone else answers there: the health check would be fooled by them.
                raise PartFailed(f"{part.name} cannot start: {part.health_tcp[0]}:{part.health_tcp[1]} is in use")
            part.proc = subprocess.Popen(
                part.argv,
                env=part.env,
                cwd=part.cwd,
                start_new_session=True,
                preexec_fn=_die_with(os.getpid()),  # noqa: PLW1509 - no threads run here, see _die_with
            )
            started.append(part)
            if pids is not None:
                pids.record(part.name, part.proc.pid)
            _wait_healthy(part, start_timeout)
            if stopping["signal"]:
                break
        else:
            print("\northanc-ris is up:", flush=True)
            for part in all_parts:
                print(f"  {part.listens}", flush=True)
            print(f"  data folder            {cfg.home}\n  stop with Ctrl-C\n", flush=True)
        while not stopping["signal"]:
            for part in started:
                code = part.proc.poll()
                if code is not None:
                    raise PartFailed(f"{part.name} stopped unexpectedly with status {code}")
            time.sleep(0.5)
        log.info("stopping on signal %s", stopping["signal"])
        return 0
    except PartFailed as exc:
        log.error("%s; stopping the other parts", exc)
        print(f"orthanc-ris: {exc}", file=sys.stderr, flush=True)
        return 1
    except FileNotFoundError as exc:
        log.error("cannot start a part: %s", exc)
        print(f"orthanc-ris: cannot start a part: {exc} (run `make setup`)", file=sys.stderr, flush=True)
        return 1
    finally:
        _stop(started)
        log.info("all parts stopped")
