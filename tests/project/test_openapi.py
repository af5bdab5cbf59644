import re
import uuid

import pytest
from django.core.management import call_command
from drf_spectacular.generators import SchemaGenerator

PUBLIC_PATHS = {"/api/v1/auth/login", "/api/v1/auth/refresh", "/api/v1/auth/logout"}


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def test_the_schema_validates_without_warnings(tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))


def test_every_protected_operation_documents_auth_and_errors(schema):
    for path, method, operation in operations(schema):
        if path in PUBLIC_PATHS:
            assert operation["security"] == [], path
            continue
        assert {"jwtAuth": []} in operation["security"] and {"apiKeyHeader": []} in operation["security"], path
        assert {"401", "403", "429"} <= set(operation["responses"]), (method, path)
        assert operation.get("summary"), (method, path)


def test_schema_and_docs_are_served(client):
    assert client.get("/api/schema/").status_code == 200
    as_json = client.get("/api/schema/?format=json")
    assert as_json["Content-Type"].startswith("application/vnd.oai.openapi+json") and as_json.json()["paths"]
    assert client.get("/api/schema/", HTTP_ACCEPT="application/json").json()["openapi"].startswith("3.")
    docs, redoc = client.get("/api/docs/").content, client.get("/api/redoc/").content
    assert b"/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in docs  # no CDN
    assert b"/static/drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js" in redoc


def test_no_credentials_gets_401_on_every_protected_endpoint(schema, anon, db):
    checked = 0
    for path, method, _operation in operations(schema):
        if path in PUBLIC_PATHS:
            continue
        url = re.sub(r"\{[a-z_]+\}", str(uuid.uuid4()), path)  # every path parameter is an id
        response = getattr(anon, method)(url, {}, format="json") if method != "get" else anon.get(url)
        assert response.status_code == 401, (method, path, response.status_code)
        assert response.json()["error"]["code"] == "not_authenticated"
        checked += 1
    assert checked >= 5


def test_loose_request_fields_are_found_nested_and_in_lists():
    from rest_framework import serializers

    from pipeline_project.lib import fields
    from pipeline_project.lib.fields import loose_fields

    class Inner(serializers.Serializer):
        ok = fields.CharField()
        loose = serializers.IntegerField()

    class Outer(serializers.Serializer):
        name = serializers.CharField()
        strict = fields.BooleanField()
        inner = Inner()
        items = serializers.ListField(child=serializers.UUIDField())
        shown = serializers.CharField(read_only=True)

    assert loose_fields(Outer()) == ["name", "inner.loose", "items"]
