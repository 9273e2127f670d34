"""orthanc-ris plugin entry: registers one dispatcher per Orthanc callback type and hands
every event to the risbridge modules. Nothing else happens here."""

import json
import logging
import os
import sys

import orthanc

from risbridge.change_feed import ChangeFeed, OrthancApi
from risbridge.mwl import WorklistHandler
from risbridge.ris_client import RisClient


class _OrthancLogHandler(logging.Handler):
    """Problems go to Orthanc's own log, where operators of Orthanc look for them."""

    def emit(self, record):
        msg = self.format(record)
        (orthanc.LogError if record.levelno >= logging.ERROR else orthanc.LogWarning)(msg)


# Orthanc shows plugin INFO only with --verbose (which floods the console), so routine
# lines go to stderr, the same console `orthanc-ris up` shows; WARNING and above to Orthanc.
_routine = logging.StreamHandler(sys.stderr)
_routine.addFilter(lambda record: record.levelno < logging.WARNING)
_routine.setFormatter(logging.Formatter("%(asctime)s orthanc-plugin %(levelname)s %(name)s: %(message)s"))
_problems = _OrthancLogHandler(logging.WARNING)
_problems.setFormatter(logging.Formatter("orthanc-ris %(name)s: %(message)s"))
_log = logging.getLogger("risbridge")
_log.addHandler(_routine)
_log.addHandler(_problems)
_log.setLevel(os.environ.get("ORTHANC_RIS_LOG_LEVEL", "INFO").upper())
_log.propagate = False

_settings = json.loads(orthanc.GetConfiguration()).get("OrthancRIS", {})
_ris = RisClient(
    _settings.get("RisUrl", "http://127.0.0.1:5000"),
    _settings.get("ApiToken", ""),
    float(_settings.get("RequestTimeoutSeconds", 10)),
)
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
