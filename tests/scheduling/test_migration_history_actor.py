"""Migration 0019_history_actor: the history's actor and reason and the order's notes are
added with empty defaults (rows written before keep working) and the migration goes down
and up again, on SQLite and PostgreSQL."""

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
    migrate.downgrade(empty_database_url, "0017_analytics")
    assert not {"actor", "reason"} & _columns(engine, "step_status_change")
    assert "notes" not in _columns(engine, "imaging_order")
    migrate.upgrade(empty_database_url, "0019_history_actor")
    assert "notes" in _columns(engine, "imaging_order")
    engine.dispose()
