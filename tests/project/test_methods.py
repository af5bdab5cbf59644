"""A method a route does not take is 405 with ``Allow``, with or without credentials; OPTIONS
answers the route's methods to anyone. Generated from the schema: new routes join by themselves."""

import re

import pytest
from drf_spectacular.generators import SchemaGenerator

METHODS = ("get", "post", "put", "patch", "delete", "trace")


def routes():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return [(path, set(item)) for path, item in schema["paths"].items()]


ROUTES = routes()


def _url(path: str) -> str:
    """Every path parameter (all are ids) filled with an id nothing has."""
    return re.sub(r"\{[a-z_]+\}", "00000000-0000-0000-0000-000000000000", path)


def _call(client, method: str, url: str):
    return client.generic(method.upper(), url)


@pytest.mark.parametrize("path, declared", ROUTES)
@pytest.mark.parametrize("who", ["anon", "as_owner"])
def test_undeclared_methods_are_405_with_allow(db, request, who, path, declared):
    client = request.getfixturevalue(who)
    for method in sorted(set(METHODS) - declared):
        response = _call(client, method, _url(path))
        assert response.status_code == 405, (who, method, path, response.status_code)
        assert response.json()["error"]["code"] == "method_not_allowed"
        allowed = {m.strip().lower() for m in response["Allow"].split(",")}
        assert declared <= allowed and method not in allowed, (path, response["Allow"])


@pytest.mark.parametrize("path, declared", ROUTES)
def test_options_lists_the_methods_without_credentials(db, anon, path, declared):
    response = anon.options(_url(path))
    assert response.status_code == 200, (path, response.content)
    allowed = {m.strip().lower() for m in response["Allow"].split(",")}
    assert allowed - {"head", "options"} == declared, (path, response["Allow"])
