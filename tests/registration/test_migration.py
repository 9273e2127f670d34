"""Migration 0016_registration: the seeded contrast procedure is marked iodinated, and the
migration goes down and up again, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import MetaData, create_engine, select

from ris_app.ops import migrate
from tests.clock.test_site_zone import _insert, empty_database_url  # noqa: F401  (a fixture)

pytestmark = pytest.mark.db


@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection")  # 0002's expression index
def test_the_seeded_contrast_ct_is_marked_and_the_migration_goes_both_ways(empty_database_url):  # noqa: F811
    migrate.upgrade(empty_database_url, "0014_reminders")
    engine = create_engine(empty_database_url)
    meta = MetaData()
    meta.reflect(engine)
    with engine.begin() as conn:
        for code, description in (("CTCHEST", "CT chest with contrast"), ("CTHEAD", "CT head without contrast")):
            _insert(conn, meta.tables["procedure_code"], code=code, description=description, modality="CT")
    migrate.upgrade(empty_database_url, "0016_registration")
    meta = MetaData()
    meta.reflect(engine)
    pc = meta.tables["procedure_code"]
    with engine.begin() as conn:
        rows = dict(conn.execute(select(pc.c.code, pc.c.contrast)).all())
    assert rows == {"CTCHEST": "iodinated", "CTHEAD": ""}
    migrate.downgrade(empty_database_url, "0014_reminders")
    meta = MetaData()
    meta.reflect(engine)
    assert "step_safety" not in meta.tables and "contrast" not in meta.tables["procedure_code"].c
    migrate.upgrade(empty_database_url, "0016_registration")
    engine.dispose()
