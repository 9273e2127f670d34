"""The plugin's change feed, outside Orthanc: a stub Orthanc API in front, the real RIS
(over real HTTP, real database) behind. The same code runs inside Orthanc in the e2e tests."""

from __future__ import annotations

import json
import threading

import pytest
from werkzeug.serving import make_server

from risbridge.change_feed import CURSOR_PROPERTY, ChangeFeed, OrthancApi
from risbridge.ris_client import RisClient, RisUnavailable, split_frames
from tests.conftest import TOKEN, free_port

pytestmark = pytest.mark.db


class OrthancException(Exception):
    """What orthanc.RestApiGet raises: (error code, description)."""


class StubOrthanc:
    """Just enough of Orthanc's REST API and global properties; unstubbed paths raise."""

    def __init__(self):
        self.changes: list[dict] = []
        self.studies: dict[str, dict] = {}
        self.properties: dict[int, str] = {}
        self.failing = False  # every study read fails as an Orthanc database error would

    def add_study(self, oid, uid, acc, instances):
        self.studies[oid] = {"uid": uid, "acc": acc, "n": instances}
        self.changes.append(
            {"Seq": len(self.changes) + 1, "ChangeType": "NewStudy", "ResourceType": "Study", "ID": oid}
        )

    def rest_get(self, uri: str) -> bytes:
        if uri.startswith("/changes?since="):
            since = int(uri.split("since=")[1].split("&")[0])
            page = [c for c in self.changes if c["Seq"] > since][:200]
            last = page[-1]["Seq"] if page else max([since] + [c["Seq"] for c in self.changes])
            return json.dumps({"Changes": page, "Done": True, "Last": last}).encode()
        oid = uri.split("/")[2]
        if self.failing:
            raise OrthancException(11, "Error in the plugin implementing a database back-end")
        if oid not in self.studies:
            raise OrthancException(17, "Unknown resource")
        st = self.studies[oid]
        if uri.endswith("/statistics"):
            return json.dumps({"CountSeries": 1, "CountInstances": st["n"]}).encode()
        if uri.endswith("/series"):
            return json.dumps([{"MainDicomTags": {"Modality": "CT"}, "Instances": ["i1"]}]).encode()
        if uri == f"/studies/{oid}":
            return json.dumps(
                {
                    "MainDicomTags": {"StudyInstanceUID": st["uid"], "AccessionNumber": st["acc"]},
                    "PatientMainDicomTags": {"PatientID": "P"},
                }
            ).encode()
        raise NotImplementedError(uri)

    def api(self) -> OrthancApi:
        return OrthancApi(self.rest_get, self.properties.get, self.properties.__setitem__)


@pytest.fixture
def ris_server(app):
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()


def test_ris_down_keeps_the_cursor_then_delivers_once_up(app, ris_server, client, auth):
    orthanc = StubOrthanc()
    orthanc.add_study("o1", "1.2.1", "UNKNOWN1", 4)
    down = ChangeFeed(orthanc.api(), RisClient(f"http://127.0.0.1:{free_port()}", TOKEN, timeout=2))
    with pytest.raises(RisUnavailable):
        down.drain()
    assert CURSOR_PROPERTY not in orthanc.properties  # nothing acknowledged, nothing skipped

    feed = ChangeFeed(orthanc.api(), RisClient(ris_server, TOKEN))
    assert feed.drain() == 1
    assert orthanc.properties[CURSOR_PROPERTY] == "1"
    assert feed.drain() == 0  # nothing new

    # A crash before the cursor was saved: the event is delivered again, changing nothing.
    orthanc.properties[CURSOR_PROPERTY] = "0"
    feed = ChangeFeed(orthanc.api(), RisClient(ris_server, TOKEN))  # the restarted plugin
    assert feed.drain() == 1
    items = client.get("/api/studies", headers=auth).json["items"]
    assert [(s["study_instance_uid"], s["instances"], s["unmatched"]) for s in items] == [("1.2.1", 4, True)]


def test_a_study_deleted_before_delivery_is_reported_deleted(app, ris_server, client, auth):
    orthanc = StubOrthanc()
    orthanc.add_study("o1", "1.2.1", "A", 1)
    feed = ChangeFeed(orthanc.api(), RisClient(ris_server, TOKEN))
    feed.drain()
    orthanc.changes.append({"Seq": 2, "ChangeType": "StableStudy", "ResourceType": "Study", "ID": "o1"})
    del orthanc.studies["o1"]
    feed.drain()
    assert client.get("/api/studies", headers=auth).json["items"] == []


def test_an_orthanc_error_is_retried_not_reported_as_a_deletion(app, ris_server, client, auth):
    orthanc = StubOrthanc()
    orthanc.add_study("o1", "1.2.1", "A", 1)
    feed = ChangeFeed(orthanc.api(), RisClient(ris_server, TOKEN))
    feed.drain()
    orthanc.changes.append({"Seq": 2, "ChangeType": "StableStudy", "ResourceType": "Study", "ID": "o1"})
    orthanc.failing = True
    with pytest.raises(OrthancException):
        feed.drain()
    assert orthanc.properties[CURSOR_PROPERTY] == "1"  # the change stays to be delivered
    assert [s["study_instance_uid"] for s in client.get("/api/studies", headers=auth).json["items"]] == ["1.2.1"]
    orthanc.failing = False
    assert feed.drain() == 1
    assert orthanc.properties[CURSOR_PROPERTY] == "2"


def test_refused_events_do_not_block_the_feed(app, ris_server):
    orthanc = StubOrthanc()
    orthanc.add_study("bad", "", "", 1)  # no StudyInstanceUID: the RIS answers 400
    orthanc.add_study("good", "1.2.2", "", 1)
    feed = ChangeFeed(orthanc.api(), RisClient(ris_server, TOKEN))
    assert feed.drain() == 2
    assert orthanc.properties[CURSOR_PROPERTY] == "2"


def test_wrong_token_is_retried_not_skipped(app, ris_server):
    orthanc = StubOrthanc()
    orthanc.add_study("o1", "1.2.1", "", 1)
    feed = ChangeFeed(orthanc.api(), RisClient(ris_server, "wrong"))
    with pytest.raises(RisUnavailable, match="token"):
        feed.drain()
    assert CURSOR_PROPERTY not in orthanc.properties


def test_split_frames_refuses_truncated_answers():
    assert split_frames(b"\x00\x00\x00\x02ab\x00\x00\x00\x01c") == [b"ab", b"c"]
    with pytest.raises(RisUnavailable):
        split_frames(b"\x00\x00\x00\x05ab")


def test_instance_changes_alone_do_not_write_the_cursor_each_time(app, ris_server):
    orthanc = StubOrthanc()
    orthanc.add_study("o1", "1.2.1", "", 1)
    feed = ChangeFeed(orthanc.api(), RisClient(ris_server, TOKEN))
    feed.drain()
    assert orthanc.properties[CURSOR_PROPERTY] == "1"  # a delivery is saved at once
    orthanc.changes.append({"Seq": 2, "ChangeType": "NewInstance", "ResourceType": "Instance", "ID": "i2"})
    assert feed.drain() == 0
    assert orthanc.properties[CURSOR_PROPERTY] == "1"  # skipped instance changes wait
    assert feed.cursor == 2
    feed.stop()
    assert orthanc.properties[CURSOR_PROPERTY] == "2"  # and are saved on stop
