"""No secret leaves through a command's output, and no bound value or database message
through a logged database error."""

from __future__ import annotations

import logging
import sys

import pytest
from click.testing import CliRunner
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from ris_app.db import make_engine
from ris_app.ops.cli import main
from ris_app.ops.logging_setup import SafeFormatter

SENTINEL = "Sentinel-Secret-42"


def test_settings_prints_no_secret(monkeypatch, tmp_path):
    env = {
        "ORTHANC_RIS_HOME": str(tmp_path),
        "ORTHANC_RIS_API_TOKEN": SENTINEL,
        "ORTHANC_RIS_PLUGIN_TOKEN": SENTINEL,
        "ORTHANC_RIS_SECRET_KEY": SENTINEL,
        "ORTHANC_RIS_ORTHANC_PASSWORD": SENTINEL,
        "ORTHANC_RIS_DATABASE_URL": f"postgresql+psycopg://ris:{SENTINEL}@db.example/ris",
        "ORTHANC_RIS_ORTHANC_INDEX_URL": f"postgresql://orthanc:{SENTINEL}@db.example:5432/orthanc",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    out = CliRunner().invoke(main, ["settings"])
    assert out.exit_code == 0, out.output
    assert SENTINEL not in out.output
    assert "postgresql+psycopg://ris:***@db.example/ris" in out.output
    out = CliRunner().invoke(main, ["orthanc-config"])
    assert out.exit_code == 0, out.output
    assert SENTINEL not in out.output and "orthanc:***@db.example:5432" in out.output


def test_database_errors_carry_no_values(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'x.sqlite3'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE pt (mrn VARCHAR(20) UNIQUE)"))
        conn.execute(text("INSERT INTO pt (mrn) VALUES (:m)"), {"m": SENTINEL})
    with pytest.raises(IntegrityError) as caught, engine.begin() as conn:
        conn.execute(text("INSERT INTO pt (mrn) VALUES (:m)"), {"m": SENTINEL})
    assert SENTINEL not in str(caught.value)
    engine.dispose()


def _formatted(exc: BaseException) -> str:
    try:
        raise RuntimeError("outbox pass failed") from exc
    except RuntimeError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    return SafeFormatter("%(message)s").format(record)


def test_a_logged_database_error_shows_no_message():
    # PostgreSQL's messages carry values (DETAIL: Key (mrn)=(...) already exists).
    class UniqueViolation(Exception):
        sqlstate = "23505"

        class diag:
            constraint_name = "uq_patient_mrn"
            table_name = "patient"
            column_name = None

    orig = UniqueViolation(f"duplicate key\nDETAIL:  Key (mrn)=({SENTINEL}) already exists.")
    try:
        raise IntegrityError("INSERT INTO patient (mrn) VALUES (%(mrn)s)", {"mrn": SENTINEL}, orig)
    except IntegrityError as exc:
        text_ = _formatted(exc)
    assert SENTINEL not in text_
    assert "UniqueViolation, sqlstate 23505, constraint uq_patient_mrn, table patient" in text_
    assert "outbox pass failed" in text_ and "Traceback" in text_


def test_other_errors_keep_their_message():
    assert "plain failure" in _formatted(ValueError("plain failure"))


@pytest.mark.db
def test_a_real_unique_violation_is_logged_without_its_values(database_url):
    # On PostgreSQL the driver's message itself carries the value (DETAIL: Key (mrn)=...).
    engine = make_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE pt_secret (mrn VARCHAR(40) UNIQUE)"))
        conn.execute(text("INSERT INTO pt_secret (mrn) VALUES (:m)"), {"m": SENTINEL})
    with pytest.raises(IntegrityError) as caught, engine.begin() as conn:
        conn.execute(text("INSERT INTO pt_secret (mrn) VALUES (:m)"), {"m": SENTINEL})
    text_ = _formatted(caught.value)
    assert SENTINEL not in text_ and "IntegrityError" in text_
    if engine.dialect.name == "postgresql":
        assert "sqlstate 23505" in text_ and "constraint pt_secret_mrn_key" in text_
    engine.dispose()
