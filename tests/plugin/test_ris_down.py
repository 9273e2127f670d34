"""Orthanc with our plugin while the RIS is down: scanners get a clear failure, not an
empty worklist that would look like 'nothing scheduled'."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import requests

from ris_app.config import Config
from ris_app.orthanc.client import orthanc_request
from ris_app.orthanc.config import render
from ris_app.orthanc.modalities import ALLOW
from tests.conftest import TOKEN, free_port, wait_for
from tests.fixtures.mwl import write_query

pytestmark = pytest.mark.e2e


def alone_config(home: Path) -> Config:
    """Settings for an Orthanc of its own on free ports, its RIS port one where nothing listens."""
    return Config.from_env(
        {
            "ORTHANC_RIS_HOME": str(home),
            "ORTHANC_RIS_API_TOKEN": TOKEN,
            "ORTHANC_RIS_SECRET_KEY": "x",
            "ORTHANC_RIS_HTTP_PORT": str(free_port()),
            "ORTHANC_RIS_ORTHANC_HTTP_PORT": str(free_port()),
            "ORTHANC_RIS_DICOM_PORT": str(free_port()),
            "ORTHANC_RIS_AET": "RISPACS",
        }
    )


@pytest.fixture
def orthanc_alone(tmp_path):
    """Orthanc with our plugin, pointed at a RIS port where nothing listens."""
    cfg = alone_config(tmp_path)
    conf = render(cfg)
    conf["OrthancRIS"]["RequestTimeoutSeconds"] = 2
    path = tmp_path / "orthanc.json"
    path.write_text(json.dumps(conf))
    log = open(tmp_path / "orthanc.log", "wb")
    proc = subprocess.Popen(
        ["Orthanc", str(path)], stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "TCP_NODELAY": "1"}
    )
    wait_for(lambda: _up(cfg), timeout=30)
    # findscu's default calling AE, declared as the RIS would declare its station.
    entry = {"AET": "FINDSCU", "Host": "127.0.0.1", "Port": 104, **ALLOW}
    assert orthanc_request(cfg, "PUT", "/modalities/ris-station-1", json=entry).ok
    yield cfg
    proc.terminate()
    proc.wait(20)


def _up(cfg: Config) -> bool:
    try:
        return orthanc_request(cfg, "GET", "/system", timeout=1).ok
    except requests.RequestException:
        return False


def test_worklist_query_fails_clearly_when_the_ris_is_down(orthanc_alone, tmp_path):
    query = write_query(tmp_path / "q.dcm")
    proc = subprocess.run(
        ["/usr/bin/findscu", "-W", "-aec", "RISPACS", "127.0.0.1", str(orthanc_alone.dicom_port), str(query)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "TCP_NODELAY": "1"},
    )
    out = proc.stdout + proc.stderr
    assert "Pending" not in out  # no answers
    # DIMSE failure status (0xC000-range "unable to process" or similar), not Success 0x0000
    assert "Success" not in out, out
    log = (Path(orthanc_alone.home) / "orthanc.log").read_text(errors="replace")
    assert "RIS unreachable" in log or "RisUnavailable" in log
