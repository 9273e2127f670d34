"""Migration 0013_resources gives every existing step its booked end (start plus its
procedure's catalog duration, 15 minutes without one), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import MetaData, create_engine, select
from sqlalchemy.orm import Session

from ris_app.model import ScheduledProcedureStep
from ris_app.ops import migrate
from tests.clock.test_site_zone import _insert, empty_database_url  # noqa: F401  (a fixture)

pytestmark = pytest.mark.db


@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection")  # 0002's expression index
def test_existing_steps_get_their_booked_end(empty_database_url):  # noqa: F811
    migrate.upgrade(empty_database_url, "0012_share_links")
    engine = create_engine(empty_database_url)
    meta = MetaData()
    meta.reflect(engine)
    t = meta.tables
    start = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    with engine.begin() as conn:
        chest = _insert(
            conn,
            t["procedure_code"],
            code="CTCHEST",
            description="CT chest",
            modality="CT",
            default_duration_minutes=20,
        )
        patient = _insert(conn, t["patient"], mrn="OLD", family_name="Old")
        for n, code in enumerate((chest, None)):
            order = _insert(conn, t["imaging_order"], accession_number=f"OLD{n}", patient_id=patient)
            rp = _insert(
                conn,
                t["requested_procedure"],
                order_id=order,
                requested_procedure_id=f"RP{n}",
                procedure_code_id=code,
                study_instance_uid=f"1.2.3.{n}",
            )
            _insert(
                conn,
                t["scheduled_procedure_step"],
                requested_procedure_id=rp,
                sps_id=f"SPS{n}",
                modality="CT",
                status="SCHEDULED",
                start_datetime=start if engine.dialect.name != "sqlite" else start.replace(tzinfo=None),
            )
    engine.dispose()
    migrate.upgrade(empty_database_url, "head")
    engine = create_engine(empty_database_url)
    with Session(engine) as s:
        rows = s.execute(
            select(ScheduledProcedureStep.end_datetime, ScheduledProcedureStep.booking_flag).order_by(
                ScheduledProcedureStep.sps_id
            )
        ).all()
    engine.dispose()
    assert rows == [(datetime(2026, 11, 30, 9, 20, tzinfo=UTC), ""), (datetime(2026, 11, 30, 9, 15, tzinfo=UTC), "")]
