"""The sync page's health of each part (issue 14: "nothing about each part's health",
microsecond ISO stamps): states from what the parts record, times in the site's zone
(Europe/Berlin here, not UTC), labelled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ris_app.clock import utcnow
from ris_app.db import transaction
from ris_app.model import Hl7Message, Hl7Outbox, InboundStatus, OutboxStatus
from ris_app.ops.parts import ERROR, IDLE, OK, WARN, Facts, parts_health
from ris_app.tracking import state as sync_state

pytestmark = pytest.mark.db


@pytest.fixture(autouse=True)
def _site_in_berlin(monkeypatch):
    monkeypatch.setenv("ORTHANC_RIS_TIMEZONE", "Europe/Berlin")


def _facts(**more) -> Facts:
    base = {"orthanc": "ok", "sync": {"backlog": 0}, "sync_at": utcnow(), "reconcile_at": utcnow()}
    return Facts(**{**base, "reconcile_seconds": 300.0, **more})


def _states(s, facts) -> dict[str, str]:
    return {p.part.split(" (")[0]: p.state for p in parts_health(s, facts)}


def test_a_quiet_new_installation_is_ok_or_idle(app):
    with transaction(app.extensions["ris_sessions"]) as s:
        assert _states(s, _facts()) == {
            "Orthanc": OK,
            "Image events": OK,
            "Sync worker": OK,
            "HL7 in": IDLE,
            "HL7 out": IDLE,
            "Orthanc tasks": IDLE,
            "Messages to patients": IDLE,
        }


def test_trouble_shows_on_the_part_it_concerns(app):
    with transaction(app.extensions["ris_sessions"]) as s:
        s.add(Hl7Message(raw=b"MSH|", control_id="C1", status=InboundStatus.ERROR))
        s.add(Hl7Outbox(destination="EHR", message_type="ORM^O01", control_id="O1", payload="MSH|"))
        s.add(
            Hl7Outbox(
                destination="EHR", message_type="ORM^O01", control_id="O2", payload="MSH|", status=OutboxStatus.ERROR
            )
        )
        s.flush()
        states = _states(
            s,
            _facts(orthanc="unreachable", sync={"backlog": 4}, reconcile_at=utcnow() - timedelta(hours=1)),
        )
        assert (states["Orthanc"], states["Image events"], states["Sync worker"]) == (ERROR, WARN, WARN)
        assert (states["HL7 in"], states["HL7 out"]) == (WARN, ERROR)
        out = next(p for p in parts_health(s, _facts()) if p.part.startswith("HL7 out"))
        assert out.detail == "1 waiting, 1 refused by the peer"


def test_the_sync_page_shows_site_times_labelled(app):
    from tests.scheduling.test_pages import _login

    with transaction(app.extensions["ris_sessions"]) as s:
        s.add(
            Hl7Message(raw=b"MSH|", control_id="C2", received_at=datetime(2026, 11, 30, 10, 10, 5, 123456, tzinfo=UTC))
        )
        sync_state.put(s, sync_state.FEED, {"cursor": 3, "last": 3, "delivered": 3})
    client = app.test_client()
    _login(app, client, "admin")
    html = client.get("/sync").get_data(as_text=True)
    assert "times in Europe/Berlin" in html
    assert "2026-11-30 11:10" in html  # 10:10 UTC on a site in Berlin
    assert ".123456" not in html and "+00:00" not in html
    assert 'class="badge health-ok"' in html
