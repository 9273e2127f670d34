"""The HL7 service of docker-compose.yml, checked without a Docker engine."""

from __future__ import annotations

from ris_app.config import SETTINGS
from tests.ops.test_docker_compose import compose, environment, mounts, published, sentinel_env

DEFAULTS = {s.env: s.default for s in SETTINGS}


def test_hl7_service_runs_the_listener_on_the_ris_data():
    c = compose()
    hl7, ris = c["services"]["hl7"], c["services"]["ris"]
    assert hl7["command"] == ["orthanc-ris", "hl7-listener"] and hl7["image"] == ris["image"]
    assert environment(hl7)["ORTHANC_RIS_HOME"] == environment(ris)["ORTHANC_RIS_HOME"]
    assert {s for k, s, _ in mounts(hl7) if k == "volume"} == {s for k, s, _ in mounts(ris) if k == "volume"}
    assert environment(hl7)["ORTHANC_RIS_HL7_HOST"] == "0.0.0.0"  # reached through Docker's network
    assert "2575" in " ".join(hl7["healthcheck"]["test"])  # not the image's HTTP probe


def test_hl7_port_follows_the_setting():
    assert [p[1:] for p in published(compose()["services"]["hl7"])] == [(int(DEFAULTS["ORTHANC_RIS_HL7_PORT"]), 2575)]
    moved = compose(dict(sentinel_env(), ORTHANC_RIS_HL7_PORT="6661"))
    assert [p[1:] for p in published(moved["services"]["hl7"])] == [(6661, 2575)]


def test_outbound_destinations_reach_both_the_ris_and_the_sender():
    # Status changes are queued where they happen (the RIS) and sent by the hl7 service.
    c = compose(dict(sentinel_env(), ORTHANC_RIS_HL7_DESTINATIONS="EHR=ehr:2576"))
    for name in ("ris", "hl7"):
        assert environment(c["services"][name])["ORTHANC_RIS_HL7_DESTINATIONS"] == "EHR=ehr:2576"


def test_allowlist_and_tls_settings_reach_the_listener():
    names = (
        "ORTHANC_RIS_HL7_ALLOW",
        "ORTHANC_RIS_HL7_TLS_CERT",
        "ORTHANC_RIS_HL7_TLS_KEY",
        "ORTHANC_RIS_HL7_TLS_CLIENT_CA",
        "ORTHANC_RIS_HL7_TLS_PEER_CA",
    )
    c = compose(dict(sentinel_env(), **{name: f"value-of-{name}" for name in names}))
    env = environment(c["services"]["hl7"])
    assert {name: env[name] for name in names} == {name: f"value-of-{name}" for name in names}
