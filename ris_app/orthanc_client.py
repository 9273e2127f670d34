"""The RIS's calls to Orthanc's REST API: one place that knows the URL and credentials."""
from __future__ import annotations

import requests

from .config import Config


def orthanc_request(cfg: Config, method: str, path: str, *, timeout: float = 30, **kwargs) -> requests.Response:
    """Call Orthanc's REST API at `path` (leading slash), authenticating when configured."""
    auth = (cfg.orthanc_username, cfg.orthanc_password) if cfg.orthanc_username else None
    return requests.request(method, cfg.orthanc_url + path, auth=auth, timeout=timeout, **kwargs)
