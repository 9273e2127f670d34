"""The audit trail with the whole system running (`orthanc-ris up`: Orthanc with the
plugin, dcmtk's findscu and storescu): the C-FIND the plugin relays and the images Orthanc
receives are recorded under the modality's AE title, with the study's MRN and accession;
the plugin's token is only named in the detail."""

from __future__ import annotations

import pytest

from ris_app.config import Config
from ris_app.db import make_engine, make_sessionmaker
from tests.conftest import wait_for
from tests.fixtures.audit import events, holds_no_name
from tests.fixtures.dicom_factory import write_series
from tests.fixtures.mwl import write_query

pytestmark = pytest.mark.e2e


def test_relayed_dicom_is_recorded_under_the_modalitys_ae(system, tmp_path):
    cfg = Config.from_env({**system.env, "ORTHANC_RIS_HOME": str(system.home)})
    engine = make_engine(cfg.database_url)
    sessions = make_sessionmaker(engine)
    try:
        assert system.findscu(write_query(tmp_path / "q.dcm")).returncode == 0
        (query,) = wait_for(lambda: events(sessions, action="worklist.query"))
        assert (query.actor, query.actor_kind, query.outcome) == ("FINDSCU", "ae", "success")
        assert query.detail.startswith("relayed by token ")

        files = write_series(tmp_path / "s", 2, patient_id="AUDE2E1", patient_name="Zyxwvutson^Q", accession="AUDE2E1")
        assert system.storescu(files).returncode == 0
        received = wait_for(lambda: events(sessions, action="images.receive"), timeout=60)
        assert {(e.actor, e.actor_kind, e.patient_mrn, e.accession) for e in received} == {
            ("STORESCU", "ae", "AUDE2E1", "AUDE2E1")
        }
        holds_no_name(events(sessions), "Zyxwvutson")
    finally:
        engine.dispose()
