"""Orthanc's configuration, generated from orthanc-config/orthanc.json and our settings."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ris_app.config import REPO_ROOT, Config

TEMPLATE = REPO_ROOT / "orthanc-config" / "orthanc.json"
PLUGIN_SCRIPT = REPO_ROOT / "plugins" / "orthanc_ris_plugin.py"
# Only the plugins we use are loaded: the ModalityWorklists sample must stay off, since
# Orthanc accepts one worklist handler and ours is the Python one.
PLUGIN_LIBRARIES = ("libOrthancPython.so", "libOrthancDicomWeb.so")


# Orthanc checks the calling AE at association only when all six are off (then each
# command needs its per-modality Allow* flag): the template has them all false.
ALWAYS_ALLOW = ("Echo", "Store", "Find", "FindWorklist", "Get", "Move")
# What `ORTHANC_RIS_DICOM_ALLOW_UNKNOWN_AE` opens to any calling AE: what a scanner does.
OPEN_TO_UNKNOWN = ("Echo", "Store", "FindWorklist")


def render(cfg: Config, *, check_hosts: bool = False) -> dict:
    """Orthanc's configuration. `check_hosts`: compare callers' addresses with their
    station's host (`modalities.checks_hosts`: every station gave one)."""
    conf = json.loads(TEMPLATE.read_text())
    storage = cfg.home / "orthanc" / "storage"
    conf.update(
        {
            "HttpPort": cfg.orthanc_http_port,
            "DicomPort": cfg.dicom_port,
            "DicomAet": cfg.aet,
            "StorageDirectory": str(storage),
            "IndexDirectory": str(cfg.home / "orthanc" / "index"),
            "StableAge": cfg.stable_age,
            "RemoteAccessAllowed": cfg.orthanc_remote_access,
            "DicomModalitiesInDatabase": True,
            "DicomCheckCalledAet": True,
            "DicomCheckModalityHost": check_hosts and not cfg.dicom_allow_unknown_ae,
            **{f"DicomAlwaysAllow{c}": cfg.dicom_allow_unknown_ae and c in OPEN_TO_UNKNOWN for c in ALWAYS_ALLOW},
            "PythonScript": str(PLUGIN_SCRIPT),
            "Plugins": [
                str(cfg.orthanc_plugins / lib) for lib in PLUGIN_LIBRARIES if (cfg.orthanc_plugins / lib).exists()
            ],
        }
    )
    if cfg.orthanc_index_url:
        # Orthanc's index in PostgreSQL (images stay on disk): what lets several Orthanc
        # processes share one archive. Lock off, so they can run side by side.
        conf["Plugins"].append(str(cfg.orthanc_plugins / "libOrthancPostgreSQLIndex.so"))
        conf["PostgreSQL"] = {
            "EnableIndex": True,
            "EnableStorage": False,
            "ConnectionUri": cfg.orthanc_index_url,
            "Lock": False,
        }
    # The plugin's own token (role plugin): it reaches /api/internal/* and nothing else.
    conf["OrthancRIS"] = dict(conf.get("OrthancRIS", {}), RisUrl=cfg.ris_url, ApiToken=cfg.plugin_token)
    # The service account of the RIS, the sync worker and the viewer proxy. The plugin
    # needs none: its orthanc.RestApi* calls never pass Orthanc's HTTP layer.
    if cfg.orthanc_username and cfg.orthanc_password:
        conf["RegisteredUsers"] = dict(conf.get("RegisteredUsers", {}), **{cfg.orthanc_username: cfg.orthanc_password})
    refuse_open_remote_access(conf)
    return conf


def refuse_open_remote_access(conf: dict) -> None:
    """Orthanc reachable from other hosts without a login would open the archive to the
    network (read and DELETE everything): refuse the configuration instead."""
    if not conf.get("RemoteAccessAllowed"):
        return
    users = conf.get("RegisteredUsers") or {}
    if conf.get("AuthenticationEnabled") is not True or not users or not all(users.values()):
        raise ValueError(
            "Orthanc's remote access (ORTHANC_RIS_ORTHANC_REMOTE_ACCESS) needs authentication: "
            "AuthenticationEnabled true and a user with a password in RegisteredUsers"
        )


def write(cfg: Config, *, check_hosts: bool = False) -> Path:
    """Write the generated configuration (it holds the plugin's token and the service account: mode 0600)."""
    folder = cfg.home / "orthanc"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "orthanc.json"
    data = json.dumps(render(cfg, check_hosts=check_hosts), indent=2)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(data)
    return path
