"""Shared fixtures: a fresh database per test, and the whole system (`orthanc-ris up`)
running on free ports for end-to-end tests."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "plugins"))  # the plugin's modules are tested without Orthanc

# dcmtk's tools: pynetdicom installs scripts with the same names into the venv, so name
# Debian's explicitly.
FINDSCU = "/usr/bin/findscu"
STORESCU = "/usr/bin/storescu"
DUMP2DCM = "/usr/bin/dump2dcm"
TEST_OUTPUT = REPO / "test-output"
# The calling AEs of findscu and storescu as the tests run them: registered as stations by
# start_system (the DICOM allowlist); a test using another AE registers it.
TEST_STATIONS = ("FINDSCU", "STORESCU")


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port free now and not handed out before in this run: the kernel may give a just
    closed port again, and one system takes five at once (HTTP, Orthanc, DICOM, HL7, MPPS)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


# --------------------------------------------------------------------------- the site's zone
@pytest.fixture(autouse=True)
def _site_zone_restored():
    """The app factory sets this process's site zone; the next test starts from the
    environment's again ($ORTHANC_RIS_TIMEZONE, else the server's zone)."""
    from ris_app import clock

    yield
    clock.set_site_zone(None)


# --------------------------------------------------------------------------- database
def _reset_postgres(url: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture
def database_url(tmp_path) -> str:
    """A fresh, migrated database: PostgreSQL when ORTHANC_RIS_TEST_DATABASE_URL is set
    (as .ci/run does), else a SQLite file."""
    from ris_app.ops import migrate

    url = os.environ.get("ORTHANC_RIS_TEST_DATABASE_URL")
    if url:
        _reset_postgres(url)
    else:
        url = f"sqlite:///{tmp_path / 'ris.sqlite3'}"
    migrate.upgrade(url)
    return url


TOKEN = "test-token-0123456789"


def make_config(tmp_path, database_url: str, zone: str = ""):
    """The RIS configuration of one test: its own home and database, the suite's token,
    nothing listening on Orthanc's port ("unreachable"), the site zone `zone` ("" is the
    server's)."""
    from ris_app.config import Config

    return Config.from_env(
        {
            "ORTHANC_RIS_HOME": str(tmp_path / "home"),
            "ORTHANC_RIS_DATABASE_URL": database_url,
            "ORTHANC_RIS_API_TOKEN": TOKEN,
            "ORTHANC_RIS_SECRET_KEY": "test-secret",
            "ORTHANC_RIS_ORTHANC_HTTP_PORT": str(free_port()),
            "ORTHANC_RIS_TIMEZONE": zone,
        }
    )


def make_app(cfg):
    """The RIS app of `cfg` in testing mode, its procedure catalog seeded."""
    from ris_app import create_app
    from ris_app.db import transaction
    from ris_app.scheduling.catalog import seed_default_catalog

    app = create_app(cfg)
    app.config["TESTING"] = True
    with transaction(app.extensions["ris_sessions"]) as s:
        seed_default_catalog(s)
    return app


@pytest.fixture
def config(tmp_path, database_url):
    # The whole suite runs in another site zone with ORTHANC_RIS_TIMEZONE=... pytest.
    return make_config(tmp_path, database_url, os.environ.get("ORTHANC_RIS_TIMEZONE", ""))


@pytest.fixture
def app(config):
    app = make_app(config)
    yield app
    app.extensions["ris_engine"].dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def auth():
    return {"Authorization": f"Bearer {TOKEN}"}


# --------------------------------------------------------------------------- the system
@dataclass
class System:
    home: Path
    ris_url: str
    orthanc_url: str
    dicom_port: int
    aet: str
    token: str
    proc: subprocess.Popen
    env: dict
    hl7_port: int = 0  # the MLLP listener
    # Patient identifiers the tests registered: none may reach a log line above DEBUG.
    patient_identifiers: set[str] = field(default_factory=set)

    @property
    def mpps_port(self) -> int:
        return int(self.env["ORTHANC_RIS_MPPS_PORT"])

    def api(self, method: str, path: str, **kw) -> requests.Response:
        headers = kw.pop("headers", {})
        headers.setdefault("Authorization", f"Bearer {self.token}")
        body = kw.get("json")
        if method in ("POST", "PATCH") and path.startswith("/api/patients") and isinstance(body, dict):
            self.patient_identifiers |= {
                str(body[k]) for k in ("mrn", "family_name", "given_name") if len(str(body.get(k) or "")) >= 3
            }
        return requests.request(method, self.ris_url + path, headers=headers, timeout=30, **kw)

    def add_station(self, aet: str, modality: str = "OT", **fields) -> None:
        """Register a station (the DICOM allowlist) unless one has this AE title."""
        if any(st["aet"] == aet for st in self.api("GET", "/api/stations").json()["items"]):
            return
        r = self.api("POST", "/api/stations", json={"aet": aet, "modality": modality, **fields})
        assert r.status_code == 201, r.text

    def place_order(self, mrn: str, start: str, **fields) -> str:
        """Order a CT head for `mrn` at `start` (site time, "YYYY-MM-DDTHH:MM") through the
        API; `fields` add to or override the body. Returns the accession number."""
        body = {"mrn": mrn, "procedure_code": "CTHEAD", "scheduled_start": start, **fields}
        r = self.api("POST", "/api/orders", json=body)
        assert r.status_code == 201, r.text
        return r.json()["accession_number"]

    @property
    def orthanc_auth(self) -> tuple[str, str]:
        """The service account `orthanc-ris up` generated (Orthanc's REST API needs a login)."""
        return ("orthanc-ris", (self.home / "secrets" / "orthanc-password").read_text().strip())

    def orthanc(self, method: str, path: str, **kw) -> requests.Response:
        kw.setdefault("auth", self.orthanc_auth)
        return requests.request(method, self.orthanc_url + path, timeout=30, **kw)

    def findscu(
        self, query_file: Path, calling_aet: str = "FINDSCU", extra: list[str] | None = None
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            [
                FINDSCU,
                "-W",
                "-aet",
                calling_aet,
                "-aec",
                self.aet,
                *(extra or []),
                "127.0.0.1",
                str(self.dicom_port),
                str(query_file),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "TCP_NODELAY": "1"},
        )

    def storescu(self, files: list[Path], calling_aet: str = "STORESCU") -> subprocess.CompletedProcess:
        return subprocess.run(
            [
                STORESCU,
                "-aet",
                calling_aet,
                "-aec",
                self.aet,
                "127.0.0.1",
                str(self.dicom_port),
                *[str(f) for f in files],
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "TCP_NODELAY": "1"},
        )


def start_system(home: Path, extra_env: dict | None = None, timeout: float = 90) -> System:
    http_port, orthanc_port, dicom_port, hl7_port = free_port(), free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "ORTHANC_RIS_HOME": str(home),
        "ORTHANC_RIS_HTTP_PORT": str(http_port),
        "ORTHANC_RIS_ORTHANC_HTTP_PORT": str(orthanc_port),
        "ORTHANC_RIS_DICOM_PORT": str(dicom_port),
        "ORTHANC_RIS_VIEWER_PORT": str(free_port()),
        "ORTHANC_RIS_HL7_PORT": str(hl7_port),
        "ORTHANC_RIS_AET": "RISPACS",
        "ORTHANC_RIS_API_TOKEN": TOKEN,
        "ORTHANC_RIS_STABLE_AGE": "1",
        "ORTHANC_RIS_WORKERS": "2",
        "ORTHANC_RIS_MPPS_PORT": str(free_port()),
        "ORTHANC_RIS_MPPS_HOST": "127.0.0.1",
        **(extra_env or {}),
    }
    if "ORTHANC_RIS_DATABASE_URL" not in (extra_env or {}):  # a restart may name the database it had
        env.pop("ORTHANC_RIS_DATABASE_URL", None)
    # extra_env may name the ports (a restart on the same ones): the URLs follow it.
    http_port, orthanc_port, dicom_port = (
        int(env[k]) for k in ("ORTHANC_RIS_HTTP_PORT", "ORTHANC_RIS_ORTHANC_HTTP_PORT", "ORTHANC_RIS_DICOM_PORT")
    )
    pg = os.environ.get("ORTHANC_RIS_TEST_DATABASE_URL")
    if pg and not (extra_env or {}).get("ORTHANC_RIS_DATABASE_URL"):
        # The PostgreSQL pass of .ci/run: the RIS and Orthanc's index each get a fresh
        # database on the test cluster.
        ris_db, orthanc_db = _create_databases(pg, home.name)
        env["ORTHANC_RIS_DATABASE_URL"] = ris_db
        env["ORTHANC_RIS_ORTHANC_INDEX_URL"] = orthanc_db
    home.mkdir(parents=True, exist_ok=True)
    log = open(home / "up.log", "ab")
    offset = log.tell()  # a restart appends: look for "up" in this run's lines only
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "orthanc-ris"), "up"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    system = System(
        home=home,
        ris_url=f"http://127.0.0.1:{http_port}",
        orthanc_url=f"http://127.0.0.1:{orthanc_port}",
        dicom_port=dicom_port,
        aet="RISPACS",
        token=TOKEN,
        proc=proc,
        env=env,
        hl7_port=int(env["ORTHANC_RIS_HL7_PORT"]),
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"orthanc-ris up exited with {proc.returncode}:\n{(home / 'up.log').read_text()[-4000:]}"
            )
        if b"orthanc-ris is up" in (home / "up.log").read_bytes()[offset:]:
            # Only stations may call Orthanc: dcmtk's default calling AEs are ours.
            for aet in TEST_STATIONS:
                system.add_station(aet)
            return system
        time.sleep(0.2)
    stop_system(system)
    raise RuntimeError(f"orthanc-ris up did not start:\n{(home / 'up.log').read_text()[-4000:]}")


def _create_databases(server_url: str, tag: str) -> tuple[str, str]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = "".join(ch for ch in tag.lower() if ch.isalnum())[:40]
    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for db in (f"ris_{name}", f"orthanc_{name}"):
            conn.execute(text(f'DROP DATABASE IF EXISTS "{db}"'))
            conn.execute(text(f'CREATE DATABASE "{db}"'))
    engine.dispose()
    url = make_url(server_url)
    ris = url.set(database=f"ris_{name}").render_as_string(hide_password=False)
    orthanc = (
        f"postgresql://{url.username}{':' + url.password if url.password else ''}@{url.host}:{url.port}/orthanc_{name}"
    )
    return ris, orthanc


def stop_system(system: System) -> None:
    if system.proc.poll() is None:
        system.proc.send_signal(signal.SIGTERM)
        try:
            system.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(system.proc.pid, signal.SIGKILL)
            system.proc.wait()
    log = (system.home / "up.log").read_text(errors="replace")
    leaks = patient_data_in_log(log, system.patient_identifiers)
    assert not leaks, f"patient identifiers in the log at INFO or above (docs promise none): {leaks[:5]}"


def _require_debian_tools() -> None:
    for tool in ("Orthanc", FINDSCU, STORESCU):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: run `make setup-test`")


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    """The whole system, started once per test module with `orthanc-ris up`."""
    _require_debian_tools()
    home = tmp_path_factory.mktemp("system")
    s = start_system(home)
    yield s
    stop_system(s)
    log = (home / "up.log").read_text(errors="replace")
    TEST_OUTPUT.mkdir(exist_ok=True)
    (TEST_OUTPUT / f"up-{home.name}.log").write_text(log)


def patient_data_in_log(log: str, identifiers: set[str]) -> list[str]:
    """Log lines of every part (RIS, Orthanc, HL7, MPPS, worker, viewer) that name one of
    `identifiers` as a whole word, DEBUG lines apart."""
    if not identifiers:
        return []
    pattern = re.compile(r"(?<!\w)(" + "|".join(re.escape(i) for i in sorted(identifiers)) + r")(?!\w)")
    return [line for line in log.splitlines() if " DEBUG " not in line and pattern.search(line)]


def wait_for(predicate, timeout: float = 20, step: float = 0.2):
    """Poll until predicate() is truthy; return its value (fail the test on timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(step)
