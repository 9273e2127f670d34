"""The OpenAPI document at /api/openapi.json: it covers every /api/ route of the app, and
the app keeps to it under schemathesis (no server error, no answer outside the schema)."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import TOKEN, free_port

pytestmark = pytest.mark.db

METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}


def _openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def test_document_is_open_and_names_the_bearer_scheme(client):
    r = client.get("/api/openapi.json")
    assert r.status_code == 200
    doc = r.json
    assert doc["openapi"].startswith("3.")
    assert doc["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}
    assert doc["paths"]["/api/patients"]["post"]["security"] == [{"bearer": []}]
    assert doc["paths"]["/api/health"]["get"]["security"] == []


def test_every_api_rule_has_a_documented_operation_with_its_responses(app, client):
    doc = client.get("/api/openapi.json").json
    missing = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        for method in sorted(rule.methods & METHODS):
            op = doc["paths"].get(_openapi_path(rule.rule), {}).get(method.lower())
            if not op or not any(code.startswith("2") for code in op.get("responses", {})):
                missing.append(f"{method} {rule.rule}")
    assert missing == []


def test_the_error_schema_is_the_one_error_shape(app, client):
    from ris_app.errors import error_body

    schema = client.get("/api/openapi.json").json["components"]["schemas"]["Error"]
    body = error_body("invalid", "is required", "mrn")
    assert set(schema["properties"]) == set(body)
    assert set(schema["properties"]["error"]["properties"]) == set(body["error"])


def _contract_app():
    """An app on its own temporary SQLite database, made at import: schemathesis needs the
    schema (read from the app) when it collects; the database is migrated by `_contract_db`."""
    from ris_app import create_app
    from ris_app.config import Config

    home = Path(tempfile.mkdtemp(prefix="ris-openapi-"))
    config = Config.from_env(
        {
            "ORTHANC_RIS_HOME": str(home / "home"),
            "ORTHANC_RIS_DATABASE_URL": f"sqlite:///{home / 'ris.sqlite3'}",
            "ORTHANC_RIS_API_TOKEN": TOKEN,
            "ORTHANC_RIS_SECRET_KEY": "test-secret",
            "ORTHANC_RIS_ORTHANC_HTTP_PORT": str(free_port()),  # nothing listens: "unreachable"
        }
    )
    app = create_app(config)
    app.config["TESTING"] = True
    return app, home, config.database_url


CONTRACT_APP, CONTRACT_HOME, CONTRACT_DB = _contract_app()


@pytest.fixture(scope="module", autouse=True)
def _contract_db():
    from ris_app.db import transaction
    from ris_app.ops import migrate
    from ris_app.scheduling.catalog import seed_default_catalog

    migrate.upgrade(CONTRACT_DB)
    with transaction(CONTRACT_APP.extensions["ris_sessions"]) as s:
        seed_default_catalog(s)
    yield
    CONTRACT_APP.extensions["ris_engine"].dispose()
    shutil.rmtree(CONTRACT_HOME, ignore_errors=True)


# Worklist files and C-FIND queries travel as raw DICOM bytes.
schemathesis.serializer.alias("application/dicom", "application/octet-stream")

# Destructive operations, and those that need Orthanc, stay out: merging patients rewrites
# stored studies, reconcile calls Orthanc.
schema = (
    schemathesis.openapi.from_wsgi("/api/openapi.json", CONTRACT_APP)
    .exclude(path="/api/patients/{mrn}/merge")
    .exclude(path="/api/sync/reconcile")
)


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: the run is bounded by count
    suppress_health_check=list(HealthCheck),
)
def test_api_keeps_to_its_schema(case):
    case.call_and_validate(
        headers={"Authorization": f"Bearer {TOKEN}"},
        checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance],
    )
