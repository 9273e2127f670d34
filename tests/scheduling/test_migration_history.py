"""Migrations 0019_history_actor (the history's actor and reason and the order's notes,
added with empty defaults: rows written before keep working) and 0020_step_change (the
edits and moves beside it) go down and up again, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import MetaData, create_engine

from ris_app.ops import migrate
from tests.clock.test_site_zone import empty_database_url  # noqa: F401  (a fixture)

pytestmark = pytest.mark.db


def _columns(engine, table: str) -> set[str]:
    meta = MetaData()
    meta.reflect(engine)
    return set(meta.tables[table].c.keys())


@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection")  # 0002's expression index
def test_history_actor_columns_both_ways(empty_database_url):  # noqa: F811
    migrate.upgrade(empty_database_url, "0019_history_actor")
    engine = create_engine(empty_database_url)
    assert {"actor", "reason"} <= _columns(engine, "step_status_change")
    assert "notes" in _columns(engine, "imaging_order")
    migrate.downgrade(empty_database_url, "0018_patient_search")
    assert not {"actor", "reason"} & _columns(engine, "step_status_change")
    assert "notes" not in _columns(engine, "imaging_order")
    migrate.upgrade(empty_database_url, "0019_history_actor")
    assert "notes" in _columns(engine, "imaging_order")
    engine.dispose()


@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection")
def test_step_change_table_both_ways(empty_database_url):  # noqa: F811
    """0020_step_change: the edits and moves beside the history, down and up again."""
    migrate.upgrade(empty_database_url, "0020_step_change")
    engine = create_engine(empty_database_url)
    assert {"kind", "actor", "what", "start_before", "start_after"} <= _columns(engine, "step_change")
    migrate.downgrade(empty_database_url, "0019_history_actor")
    meta = MetaData()
    meta.reflect(engine)
    assert "step_change" not in meta.tables
    migrate.upgrade(empty_database_url, "0020_step_change")
    assert "what" in _columns(engine, "step_change")
    engine.dispose()
