"""orthanc-ris plugin entry: registers one dispatcher per Orthanc callback type and hands
every event to the risbridge modules. Nothing else happens here."""
import json
import logging

import orthanc

from risbridge.change_feed import ChangeFeed, OrthancApi
from risbridge.mwl import WorklistHandler
from risbridge.ris_client import RisClient


class _OrthancLogHandler(logging.Handler):
    def emit(self, record):
        msg = self.format(record)
        if record.levelno >= logging.ERROR:
            orthanc.LogError(msg)
        elif record.levelno >= logging.WARNING:
            orthanc.LogWarning(msg)
        else:
            orthanc.LogInfo(msg)


_handler = _OrthancLogHandler()
_handler.setFormatter(logging.Formatter("orthanc-ris %(name)s: %(message)s"))
logging.getLogger("risbridge").addHandler(_handler)
logging.getLogger("risbridge").setLevel(logging.INFO)

_settings = json.loads(orthanc.GetConfiguration()).get("OrthancRIS", {})
_ris = RisClient(_settings.get("RisUrl", "http://127.0.0.1:5000"), _settings.get("ApiToken", ""),
                 float(_settings.get("RequestTimeoutSeconds", 10)))
_feed = ChangeFeed(
    OrthancApi(orthanc.RestApiGet, orthanc.GetGlobalProperty, orthanc.SetGlobalProperty),
    _ris,
    poll_seconds=float(_settings.get("ChangesPollSeconds", 5)),
    debounce_seconds=float(_settings.get("ChangesDebounceSeconds", 0.1)),
)


def on_change(change_type, level, resource_id):
    if change_type == orthanc.ChangeType.ORTHANC_STARTED:
        _feed.start()
    elif change_type == orthanc.ChangeType.ORTHANC_STOPPED:
        _feed.stop()
    else:
        _feed.wake()


orthanc.RegisterOnChangeCallback(on_change)
orthanc.RegisterWorklistCallback(WorklistHandler(_ris))
