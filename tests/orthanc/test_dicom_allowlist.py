"""The stations table as the DICOM allowlist, without a network: Orthanc's generated
configuration, the modality entries the RIS puts, the station API's host and port, and
the MPPS SCP's allowlist."""

from __future__ import annotations

import pytest

from ris_app.db import make_engine, make_sessionmaker, transaction
from ris_app.model import Station
from ris_app.orthanc.config import ALWAYS_ALLOW, render
from ris_app.orthanc.modalities import checks_hosts, modality_entry
from ris_app.tracking.mpps import StationAllowlist


def test_orthanc_knows_only_declared_modalities_by_default(config):
    conf = render(config)
    assert not any(conf[f"DicomAlwaysAllow{c}"] for c in ALWAYS_ALLOW)
    assert conf["DicomModalitiesInDatabase"] is True
    assert conf["DicomCheckCalledAet"] is True
    assert conf["DicomCheckModalityHost"] is False
    assert render(config, check_hosts=True)["DicomCheckModalityHost"] is True


def test_allow_unknown_ae_opens_what_a_scanner_does_and_nothing_more(config):
    from dataclasses import replace

    conf = render(replace(config, dicom_allow_unknown_ae=True), check_hosts=True)
    opened = {c for c in ALWAYS_ALLOW if conf[f"DicomAlwaysAllow{c}"]}
    assert opened == {"Echo", "Store", "FindWorklist"}
    assert conf["DicomCheckModalityHost"] is False


def test_a_modality_entry_names_every_flag():
    entry = modality_entry(Station(id=3, aet="CT1", modality="CT", host="10.0.0.21", port=4006))
    # A PUT turns every Allow* left out back on: each one is named.
    for flag in ("Echo", "Store", "Find", "FindWorklist", "Get", "Move", "StorageCommitment", "Transcoding"):
        assert f"Allow{flag}" in entry
    assert (entry["AET"], entry["Host"], entry["Port"]) == ("CT1", "10.0.0.21", 4006)
    assert not (entry["AllowFind"] or entry["AllowGet"] or entry["AllowMove"] or entry["AllowStorageCommitment"])


@pytest.mark.parametrize(
    ("hosts", "checked"), [((), False), (("10.0.0.1", ""), False), (("10.0.0.1", "10.0.0.2"), True)]
)
def test_orthanc_checks_hosts_only_when_every_station_gave_one(database_url, hosts, checked):
    sessions = make_sessionmaker(make_engine(database_url))
    with transaction(sessions) as s:
        s.add_all(Station(aet=f"CT{n}", modality="CT", host=h) for n, h in enumerate(hosts))
    with sessions() as s:
        assert checks_hosts(s) is checked


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"host": "ct1.example.org"}, "host"),
        ({"host": 17}, "host"),
        ({"port": 0}, "port"),
        ({"port": 70000}, "port"),
        ({"port": "104"}, "port"),
        ({"port": True}, "port"),
    ],
)
def test_station_host_must_be_an_address_and_port_a_port(client, auth, body, field):
    r = client.post("/api/stations", json={"aet": "CT9", "modality": "CT", **body}, headers=auth)
    assert r.status_code == 400
    assert r.get_json()["error"]["field"] == field


def test_station_host_and_port_are_kept_and_patched(client, auth):
    r = client.post(
        "/api/stations", json={"aet": "CT9", "modality": "CT", "host": " 10.0.0.21 ", "port": 104}, headers=auth
    )
    assert r.status_code == 201  # Orthanc is down here: the sync worker tells it later
    (st,) = client.get("/api/stations", headers=auth).get_json()["items"]
    assert (st["host"], st["port"]) == ("10.0.0.21", 104)
    r = client.patch("/api/stations/CT9", json={"host": "", "port": 4006}, headers=auth)
    assert r.status_code == 200
    assert (r.get_json()["host"], r.get_json()["port"]) == ("", 4006)


def test_mpps_allowlist_reads_the_stations_each_time(database_url):
    sessions = make_sessionmaker(make_engine(database_url))
    allow = StationAllowlist(sessions)
    assert not allow.allows("CT1", "127.0.0.1")
    with transaction(sessions) as s:
        s.add_all([Station(aet="CT1", modality="CT"), Station(aet="MR1", modality="MR", host="10.0.0.5")])
    assert allow.allows("ct1 ", "127.0.0.1")  # Orthanc ignores case too
    assert allow.allows("MR1", "10.0.0.5")
    assert not allow.allows("MR1", "127.0.0.1")
    assert StationAllowlist(sessions, allow_unknown=True).allows("ANYONE", "192.0.2.1")


def test_orthanc_always_asks_for_the_service_account(config):
    conf = render(config)
    assert conf["AuthenticationEnabled"] is True
    assert conf["RegisteredUsers"] == {config.orthanc_username: config.orthanc_password}
    assert config.orthanc_username == "orthanc-ris" and len(config.orthanc_password) > 20
    assert (config.home / "secrets" / "orthanc-password").stat().st_mode & 0o077 == 0


def test_remote_access_without_authentication_is_refused(config, tmp_path, monkeypatch):
    import json
    from dataclasses import replace

    from ris_app.orthanc import config as orthanc_config

    template = json.loads(orthanc_config.TEMPLATE.read_text())
    template["AuthenticationEnabled"] = False
    edited = tmp_path / "orthanc.json"
    edited.write_text(json.dumps(template))
    monkeypatch.setattr(orthanc_config, "TEMPLATE", edited)
    render(config)  # this host only: tolerated
    with pytest.raises(ValueError, match="needs authentication"):
        render(replace(config, orthanc_remote_access=True))
    with pytest.raises(ValueError, match="needs authentication"):
        render(replace(config, orthanc_remote_access=True, orthanc_password=""))
