"""The OpenAPI document at /api/openapi.json: it covers every /api/ route of the app."""

from __future__ import annotations

import re

import pytest

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
