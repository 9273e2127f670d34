"""The audit trail's own guarantees, on SQLite and (in the PostgreSQL pass) PostgreSQL: the
database refuses to change or remove an event; the sealer chains events in commit order;
`orthanc-ris audit verify` finds a row changed, removed or slipped in by someone who got
past the triggers (a database administrator)."""

from __future__ import annotations

import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from ris_app.audit.chain import GENESIS, seal, verify
from ris_app.audit.trail import Who, record
from ris_app.db import transaction
from ris_app.model import AuditEvent

pytestmark = pytest.mark.db
ALICE = Who("alice", "user", "10.0.0.7")


@pytest.fixture
def sessions(app):
    return app.extensions["ris_sessions"]


def _events(sessions, n: int, start: int = 0) -> None:
    with transaction(sessions) as s:
        for i in range(start, start + n):
            record(s, "patient.read", ALICE, mrn=f"MRN-{i}", resource="/patients/<mrn>")


def _bypass_triggers(s) -> None:
    """What only a database administrator can do: take the triggers away."""
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("ALTER TABLE audit_event DISABLE TRIGGER USER"))
    else:
        s.execute(text("DROP TRIGGER audit_event_seal_only"))
        s.execute(text("DROP TRIGGER audit_event_no_delete"))


def test_events_are_chained_in_order_and_verify(sessions):
    _events(sessions, 3)
    assert seal(sessions) == 3
    _events(sessions, 2, start=3)
    assert verify(sessions).unsealed == 2
    assert seal(sessions) == 2
    with transaction(sessions, write=False) as s:
        rows = s.query(AuditEvent).order_by(AuditEvent.seq).all()
        assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
        assert rows[0].prev_hash == GENESIS and all(b.prev_hash == a.hash for a, b in pairwise(rows))
    verdict = verify(sessions)
    assert verdict.ok and verdict.checked == 5 and verdict.unsealed == 0


@pytest.mark.parametrize(
    "sql",
    ["UPDATE audit_event SET actor = 'eve' WHERE seq = 2", "DELETE FROM audit_event WHERE seq = 2"],
)
def test_the_database_refuses_to_change_or_remove_an_event(sessions, sql):
    _events(sessions, 3)
    seal(sessions)
    with sessions() as s, pytest.raises(DBAPIError, match="append-only"):
        s.execute(text(sql))
        s.commit()
    assert verify(sessions).ok


def test_the_sealer_may_only_set_the_chain_once(sessions):
    _events(sessions, 1)
    seal(sessions)
    with sessions() as s, pytest.raises(DBAPIError, match="append-only"):
        s.execute(text("UPDATE audit_event SET hash = 'x', seq = 7"))
        s.commit()


@pytest.mark.parametrize(
    ("tamper", "found"),
    [
        ("UPDATE audit_event SET patient_mrn = 'MRN-X' WHERE seq = 2", "seq 2 (id 2): changed after it was sealed"),
        ("DELETE FROM audit_event WHERE seq = 2", "seq 2..2 missing (rows removed)"),
    ],
)
def test_verify_names_a_row_changed_or_removed_behind_the_triggers(sessions, tamper, found):
    _events(sessions, 4)
    seal(sessions)
    with transaction(sessions) as s:
        _bypass_triggers(s)
        s.execute(text(tamper))
    verdict = verify(sessions)
    assert not verdict.ok and found in verdict.broken


def test_audit_verify_command_exits_1_on_a_changed_row(sessions, config, tmp_path):
    _events(sessions, 2)
    cli = str(Path(sys.executable).parent / "orthanc-ris")
    env = {
        "ORTHANC_RIS_HOME": str(config.home),
        "ORTHANC_RIS_DATABASE_URL": config.database_url,
        "PATH": "/usr/bin:/bin",
    }
    ok = subprocess.run([cli, "audit", "verify"], env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "2 event(s) checked, 0 not sealed yet: OK" in ok.stdout, ok.stderr
    with transaction(sessions) as s:
        _bypass_triggers(s)
        s.execute(text("UPDATE audit_event SET actor = 'eve' WHERE seq = 1"))
    bad = subprocess.run([cli, "audit", "verify"], env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "BROKEN: seq 1 (id 1): changed after it was sealed" in bad.stderr
