"""Every 4xx/5xx on API paths has the shape {"error": {"code", "message", "details"}}."""

import pytest

ME, KEYS = "/api/v1/auth/me", "/api/v1/auth/api-keys"


def error_of(response, status):
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


def test_400_malformed_json(as_owner):
    error = error_of(as_owner.post(KEYS, "{not json", content_type="application/json"), 400)
    assert error["code"] == "parse_error"


def test_400_validation_names_the_field(as_owner):
    error = error_of(as_owner.post(KEYS, {}, format="json"), 400)
    assert error == {"code": "invalid", "message": "Invalid input.", "details": {"name": ["This field is required."]}}


def test_400_json_that_is_not_an_object(as_owner):
    assert error_of(as_owner.post(KEYS, "[1, 2]", content_type="application/json"), 400)["code"] == "invalid"


def test_400_bad_pagination_parameters(as_owner):
    error = error_of(as_owner.get(f"{KEYS}?page=0"), 400)
    assert error["details"] == {"page": ["Must be a positive integer."]}
    assert error_of(as_owner.get(f"{KEYS}?limit=abc"), 400)["details"] == {"limit": ["Must be a positive integer."]}


def test_401_without_credentials(anon):
    error = error_of(anon.get(ME), 401)
    assert error["code"] == "not_authenticated"


def test_401_with_a_malformed_bearer_header(anon):
    anon.credentials(HTTP_AUTHORIZATION="Bearer")
    assert error_of(anon.get(ME), 401)["code"] == "authentication_failed"
    anon.credentials(HTTP_AUTHORIZATION="Bearer not.a.jwt")
    assert error_of(anon.get(ME), 401)["code"] == "token_not_valid"


def test_403_missing_permission(as_viewer):
    assert error_of(as_viewer.get(KEYS), 403)["code"] == "permission_denied"


def test_404_unknown_api_path(as_owner, anon):
    error = error_of(anon.get("/api/v1/no-such-thing"), 404)
    assert error["code"] == "not_found" and "/api/v1/no-such-thing" in error["message"]
    assert error_of(as_owner.get(f"{ME}/"), 404)["code"] == "not_found"  # no trailing-slash redirects


def test_404_is_html_outside_the_api(anon):
    response = anon.get("/no-such-page")
    assert response.status_code == 404 and not response["Content-Type"].startswith("application/json")


def test_405_wrong_method(as_owner):
    error = error_of(as_owner.post(ME, {}, format="json"), 405)
    assert error["code"] == "method_not_allowed"


def test_415_wrong_content_type(as_owner):
    error = error_of(as_owner.post(KEYS, "name=x", content_type="application/x-www-form-urlencoded"), 415)
    assert error["code"] == "unsupported_media_type"
    assert error_of(as_owner.post(KEYS, "name", content_type="text/plain"), 415)["code"] == "unsupported_media_type"


def test_an_unacceptable_accept_header_gets_json_not_406(as_owner, anon):
    response = as_owner.get(ME, HTTP_ACCEPT="text/csv")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert error_of(anon.get(ME, HTTP_ACCEPT="text/csv"), 401)["code"] == "not_authenticated"


def test_413_oversized_json_body(as_owner, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    body = '{"name": "' + "x" * 2048 + '"}'
    assert error_of(as_owner.post(KEYS, body, content_type="application/json"), 413)["code"] == "request_too_large"


def test_429_with_retry_after(as_owner, settings):
    rates = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {**rates, "principal": "1/hour"}}
    as_owner.get(ME)
    response = as_owner.get(ME)
    error = error_of(response, 429)
    assert error["code"] == "throttled"
    assert 0 < int(response["Retry-After"]) <= 3600 and error["details"]["retry_after"] == int(response["Retry-After"])


@pytest.mark.urls("tests.project.urls_boom")
@pytest.mark.parametrize("path", ["/api/v1/boom", "/api/v1/plain-boom"])
def test_500_unexpected_errors(owner, path):
    from tests.conftest import jwt_client

    client = jwt_client(owner)
    client.raise_request_exception = False
    error = error_of(client.get(path), 500)
    assert error["code"] == "server_error" and "boom" not in error["message"]
