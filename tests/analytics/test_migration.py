"""Migration 0017_analytics creates the indexes the dashboards read by, as the model
declares them (ris_app/model/analytics.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, inspect

from ris_app.model.analytics import INDEXES

pytestmark = pytest.mark.db


def test_the_dashboards_indexes_exist(database_url):
    engine = create_engine(database_url)
    try:
        found = inspect(engine)
        for index in INDEXES:
            table = index.table.name
            by_name = {i["name"]: i["column_names"] for i in found.get_indexes(table)}
            assert by_name.get(index.name) == [c.name for c in index.columns], index.name
    finally:
        engine.dispose()
