"""Bad input gets a 400 in the error format, never a 500 (issue 7's probe classes).

The classes are covered at their root, for every field of their kind: every JSON body
goes through one parser (NUL, lone surrogates, NaN/Infinity, nesting), JSON text in forms
and decoded cursors through the same check, integers through 64-bit bounded fields, and
every operation in the schema is tried with each class, so a new endpoint is covered too.
"""

import base64
import json

import pytest
from drf_spectacular.generators import SchemaGenerator

from tests.project.test_errors import error_of

JOBS, PIPELINES, UPLOAD = "/api/v1/jobs", "/api/v1/pipelines", "/api/v1/upload"
NUL, SURROGATE = r'"a\u0000b"', r'"a\ud800b"'


def json_operations():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if "application/json" in operation.get("requestBody", {}).get("content", {}):
                yield method, path


JSON_OPERATIONS = list(json_operations())


@pytest.fixture
def objects(as_owner) -> dict:
    """An object of each kind, so operations on ``{id}`` reach their body rather than a 404."""
    job = as_owner.post(JOBS, {"source_type": "text", "text": "x"}, format="json").json()
    pipeline = as_owner.post(PIPELINES, {"name": "p", "config": {"stages": [{"name": "detect"}]}}, format="json")
    key = as_owner.post("/api/v1/auth/api-keys", {"name": "k"}, format="json").json()
    hook = as_owner.post("/api/v1/webhooks", {"url": "https://hooks.example.com/x", "events": ["*"]}, format="json")
    return {JOBS: job["id"], PIPELINES: pipeline.json()["id"], "/api/v1/auth/api-keys": key["id"],
            "/api/v1/webhooks": hook.json()["id"]}  # fmt: skip


def _raw(client, objects, method, path, body: str):
    for prefix, pk in objects.items():
        if path.startswith(prefix):
            path = path.replace("{id}", pk)
    return getattr(client, method)(path, body, content_type="application/json")


@pytest.mark.parametrize(
    "body, path, message",
    [
        ('{"metadata": {"k": NUL}}'.replace("NUL", NUL), "metadata.k", "NUL"),
        ('{"metadata": {NUL: 1}}'.replace("NUL", NUL), "metadata", "NUL"),
        ('{"metadata": {"k": [1, S]}}'.replace("S", SURROGATE), "metadata.k[1]", "surrogates"),
        ('{"metadata": {"k": NaN}}', None, "NaN"),
        ('{"metadata": {"k": 1e400}}', "metadata.k", "finite"),
        ('{"config": ' + "[" * 3000 + "]" * 3000 + "}", None, "Nested"),
        ('{"config": ' + '{"a": ' * 40 + "1" + "}" * 40 + "}", None, "Nested"),
    ],
)
@pytest.mark.parametrize("method, operation", JSON_OPERATIONS)
def test_every_json_body_refuses_what_postgres_cannot_store(as_owner, objects, method, operation, body, path, message):
    error = error_of(_raw(as_owner, objects, method, operation, body), 400)
    text = json.dumps(error)
    assert message in text, (method, operation, error)
    if path is not None:
        assert path in error["details"], error


def test_the_operations_above_are_all_of_them():
    assert {("post", JOBS), ("post", f"{PIPELINES}/validate"), ("post", f"{JOBS}/{{id}}/retry")} <= set(JSON_OPERATIONS)


@pytest.mark.parametrize(
    "metadata, message",
    [('{"k": "a\\u0000"}', "NUL"), ('{"k": "\\udc00"}', "surrogates"), ("[" * 3000 + "]" * 3000, "Nested"),
     ("[1]", "object"), ("{nope", "JSON"), ('{"k": Infinity}', "JSON")],
)  # fmt: skip
def test_json_text_in_an_upload_form_is_checked_the_same_way(as_owner, metadata, message):
    from django.core.files.uploadedfile import SimpleUploadedFile

    document = SimpleUploadedFile("a.txt", b"hello world", content_type="text/plain")
    error = error_of(as_owner.post(UPLOAD, {"files": [document], "metadata": metadata}, format="multipart"), 400)
    assert "metadata" in error["details"] and message in json.dumps(error["details"]), error


@pytest.mark.parametrize(
    "body, field",
    [
        ({"source_type": "text", "text": "x", "file_size": 2**63}, "file_size"),
        ({"source_type": "text", "text": "x", "file_size": -1}, "file_size"),
        ({"source_type": "text", "text": "x", "start": 0}, "start"),
        ({"source_type": "text", "text": "x", "start": "true"}, "start"),
        ({"source_type": "text", "text": 5}, "text"),
        ({"source_type": "text", "text": "x", "pipeline_id": 5}, "pipeline_id"),
        ({"source_type": "text", "text": "x", "priority": 1}, "priority"),
        ({"source_type": "text", "text": "x", "metadata": "{}"}, "metadata"),
        ({"source_type": "url"}, "source_uri"),
        ({"source_type": "url", "source_uri": "http://[::127.0.0.1]/a.pdf"}, "source_uri"),
        ({"source_type": ["text"]}, "source_type"),
    ],
)
def test_job_creation_takes_exactly_the_types_of_the_schema(as_owner, body, field):
    assert field in error_of(as_owner.post(JOBS, body, format="json"), 400)["details"]


@pytest.mark.parametrize("extra", [{}, {"start": True}])
def test_an_upload_job_is_always_a_draft(as_owner, extra):
    response = as_owner.post(JOBS, {"source_type": "upload", **extra}, format="json")
    assert response.status_code == 201 and response.json()["status"] == "draft"


@pytest.mark.parametrize(
    "body, field",
    [({"name": 0, "config": {"stages": [{"name": "detect"}]}}, "name"),
     ({"name": " padded", "config": {"stages": [{"name": "detect"}]}}, "name"),
     ({"name": "line\n", "config": {"stages": [{"name": "detect"}]}}, "name"),
     ({"name": "p", "config": {"stages": [{"name": "detect"}]}, "is_active": "yes"}, "is_active"),
     ({"name": "p", "config": {"stages": [{"name": "detect"}]}, "description": 1}, "description")],
)  # fmt: skip
def test_pipeline_fields_are_strict(as_owner, body, field):
    assert field in error_of(as_owner.post(PIPELINES, body, format="json"), 400)["details"]


def test_a_pipeline_can_be_created_inactive(as_owner):
    body = {"name": "off", "config": {"stages": [{"name": "detect"}]}, "is_active": False}
    response = as_owner.post(PIPELINES, body, format="json")
    assert response.status_code == 201 and response.json()["is_active"] is False


@pytest.mark.parametrize(
    "query", ["page=567926881640135232", "page=100000000000000000000", "page=%EF%BC%91", "page=1_0"]
)
def test_page_numbers_out_of_range_or_not_ascii_digits_are_400(as_owner, query):
    for url in (JOBS, PIPELINES, "/api/v1/auth/api-keys"):
        assert "page" in error_of(as_owner.get(f"{url}?{query}"), 400)["details"]


def test_a_huge_page_size_is_capped(as_owner):
    response = as_owner.get(f"{JOBS}?page_size=100000000000000000000")
    assert response.status_code == 200 and response.json()["page_size"] == 100


def _cursor(values) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "values",
    [["2026-01-01T00:00:00Z", "a\u0000"], ["9999-12-31T23:59:59-23:59", "x"],
     ["2026-01-01T00:00:00", "00000000-0000-0000-0000-000000000000"], [[[[1]]]], [None, None],
     [None, "00000000-0000-0000-0000-000000000000"], ["2026-01-01T00:00:00Z", None], [1.5, "x"]],
)  # fmt: skip
def test_cursors_that_could_not_reach_the_database_are_400(as_owner, values):
    assert error_of(as_owner.get(f"{JOBS}?cursor={_cursor(values)}"), 400)["details"] == {"cursor": ["Invalid cursor."]}


@pytest.mark.parametrize("value", [True, [], 1e23, 1.5, None, 7])
def test_cursor_values_must_have_their_fields_json_type(as_owner, value):
    cursor = _cursor([value, "00000000-0000-0000-0000-000000000000"])
    for sort_by in ("file_name", "status"):
        assert error_of(as_owner.get(f"{JOBS}?sort_by={sort_by}&cursor={cursor}"), 400)["details"] == {
            "cursor": ["Invalid cursor."]
        }


def test_event_cursors_past_bigint_are_400(as_owner):
    job = as_owner.post(JOBS, {"source_type": "text", "text": "x"}, format="json").json()
    url = f"{JOBS}/{job['id']}/events?cursor={_cursor([2**64])}"
    assert error_of(as_owner.get(url), 400)["details"] == {"cursor": ["Invalid cursor."]}


@pytest.mark.parametrize("key", ["", "a" * 256, "caf\u00e9", "has space"])
def test_malformed_idempotency_keys_are_400(as_owner, key):
    response = as_owner.post(JOBS, {"source_type": "text", "text": "x"}, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert "Idempotency-Key" in error_of(response, 400)["details"]


@pytest.mark.parametrize("query", ["page=1&page=2", "search=a&search=b", "sort_by=status&sort_by=priority"])
def test_repeated_query_parameters_are_400(as_owner, query):
    error = error_of(as_owner.get(f"{JOBS}?{query}"), 400)
    assert query.split("=")[0] in error["details"]


def test_statuses_are_repeated_or_comma_separated_and_checked(as_owner):
    as_owner.post(JOBS, {"source_type": "text", "text": "x"}, format="json")
    for query in ("status=queued,failed", "status=queued&status=failed", "status=failed&status=draft,queued"):
        assert as_owner.get(f"{JOBS}?{query}").json()["total"] == 1, query
    assert as_owner.get(f"{JOBS}?status=failed").json()["total"] == 0
    assert "status" in error_of(as_owner.get(f"{JOBS}?status=queued,lost"), 400)["details"]
    assert "priority" in error_of(as_owner.get(f"{JOBS}?priority=2"), 400)["details"]


@pytest.mark.parametrize("name", ["pipeline", "created_after", "created_before", "source_type", "priority"])
def test_typed_filters_refuse_an_empty_value(as_owner, name):
    assert error_of(as_owner.get(f"{JOBS}?{name}="), 400)["details"] == {name: ["Must not be empty."]}
    assert as_owner.get(f"{JOBS}?search=").status_code == 200


@pytest.mark.parametrize("query", ["status=", "status=queued,", "status=queued&status="])
def test_an_empty_status_is_not_a_status(as_owner, query):
    assert "status" in error_of(as_owner.get(f"{JOBS}?{query}"), 400)["details"]


@pytest.mark.parametrize("name", ["page", "page_size", "limit"])
def test_empty_page_parameters_are_400(as_owner, name):
    assert name in error_of(as_owner.get(f"{PIPELINES}?{name}="), 400)["details"]


def test_search_with_nul_is_400(as_owner):
    assert "search" in error_of(as_owner.get(f"{JOBS}?search=a%00b"), 400)["details"]


def test_an_unsatisfiable_accept_header_still_gets_json(as_owner):
    response = as_owner.get(JOBS, HTTP_ACCEPT="application/xml")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
