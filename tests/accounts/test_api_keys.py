from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from accounts.models import ApiKey, Membership
from tests.conftest import Client, jwt_client, key_client
from tests.factories import ApiKeyFactory

KEYS, ME = "/api/v1/auth/api-keys", "/api/v1/auth/me"


def create_key(client, **data):
    response = client.post(KEYS, {"name": "ci", **data}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_it_shows_the_key_once_and_stores_only_a_hash(as_owner, org, owner):
    created = create_key(as_owner, scopes=["jobs:read", "jobs:create"])
    key = created["key"]
    assert key.startswith(f"dpk_{created['prefix']}_") and len(key) > 40
    assert created["scopes"] == ["jobs:create", "jobs:read"] and created["status"] == "active"

    assert "key" not in as_owner.get(f"{KEYS}/{created['id']}").json()
    assert all("key" not in item for item in as_owner.get(KEYS).json()["items"])

    row = ApiKey.objects.get(pk=created["id"])
    assert row.organization == org and row.created_by == owner
    secret = key.rsplit("_", 1)[1]
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM api_keys WHERE id = %s", [row.id])
        stored = " ".join(str(value) for value in cursor.fetchone())
    assert secret not in stored and key not in stored


@pytest.mark.parametrize("header", ["HTTP_AUTHORIZATION", "HTTP_X_API_KEY"])
def test_it_accepts_both_key_headers(anon, owner_key, header):
    value = f"Api-Key {owner_key.raw_key}" if header == "HTTP_AUTHORIZATION" else owner_key.raw_key
    anon.credentials(**{header: value})
    me = anon.get(ME).json()
    assert me["auth_method"] == "api_key"
    assert me["api_key"] == {"id": str(owner_key.id), "name": owner_key.name}
    assert me["organization"]["slug"] == "acme"


@pytest.mark.parametrize(
    "change, code",
    [
        ({"revoked_at": timezone.now()}, "api_key_revoked"),
        ({"expires_at": timezone.now() - timedelta(seconds=1)}, "api_key_expired"),
    ],
)
def test_it_refuses_revoked_and_expired_keys(owner_key, change, code):
    ApiKey.objects.filter(pk=owner_key.pk).update(**change)
    response = key_client(owner_key.raw_key).get(ME)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == code
    assert response["WWW-Authenticate"]


@pytest.mark.parametrize("raw", ["dpk_nope", "dpk_AAAAAAAA_wrongsecret", "not-a-key"])
def test_it_refuses_unknown_keys(db, raw):
    response = key_client(raw).get(ME)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_it_refuses_a_right_prefix_with_a_wrong_secret(owner_key):
    forged = owner_key.raw_key[:-1] + ("A" if owner_key.raw_key[-1] != "A" else "B")
    assert key_client(forged).get(ME).status_code == 401


def test_it_revokes_with_delete(as_owner, owner_key):
    assert as_owner.delete(f"{KEYS}/{owner_key.id}").status_code == 204
    owner_key.refresh_from_db()
    assert owner_key.revoked_at is not None and owner_key.status == "revoked"
    assert key_client(owner_key.raw_key).get(ME).status_code == 401
    assert as_owner.delete(f"{KEYS}/{owner_key.id}").status_code == 204  # idempotent
    assert as_owner.get(f"{KEYS}/{owner_key.id}").json()["status"] == "revoked"


def test_it_limits_a_key_to_its_scopes(org, owner):
    key = ApiKeyFactory(organization=org, created_by=owner, scopes=["jobs:read"])
    client = key_client(key.raw_key)
    assert client.get(ME).json()["permissions"] == ["jobs:read"]
    response = client.get(KEYS)
    assert response.status_code == 403
    assert response.json()["error"] == {
        "code": "permission_denied",
        "message": "This action requires the 'keys:manage' permission.",
        "details": {},
    }


def test_it_narrows_a_key_when_its_creator_is_demoted_or_removed(org, owner, owner_key):
    Membership.objects.filter(user=owner).update(role="viewer")
    assert key_client(owner_key.raw_key).get(ME).json()["permissions"] == ["jobs:read", "pipelines:read"]
    Membership.objects.filter(user=owner).delete()
    response = key_client(owner_key.raw_key).get(ME)
    assert response.status_code == 401 and response.json()["error"]["code"] == "api_key_orphaned"


def test_it_refuses_scopes_beyond_the_creators_permissions(as_member):
    response = as_member.post(KEYS, {"name": "x", "scopes": ["jobs:read", "audit:read"]}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"scopes": ["You do not hold: audit:read."]}


def test_it_defaults_scopes_to_the_creators_permissions(as_member):
    scopes = create_key(as_member)["scopes"]
    assert scopes == ["jobs:cancel", "jobs:create", "jobs:read", "jobs:retry", "keys:manage", "pipelines:read"]


@pytest.mark.parametrize(
    "data, field",
    [
        ({"scopes": ["jobs:fly"]}, "scopes[0]"),
        ({"scopes": []}, "scopes"),
        ({"expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
        ({"expires_at": "tomorrow"}, "expires_at"),
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
    ],
)
def test_it_validates_key_input(as_owner, data, field):
    response = as_owner.post(KEYS, {"name": "ci", **data}, format="json")
    assert response.status_code == 400
    assert list(response.json()["error"]["details"]) == [field]


def test_it_lets_a_key_create_keys_within_its_own_scopes(org, owner):
    key = ApiKeyFactory(organization=org, created_by=owner, scopes=["keys:manage", "jobs:read"])
    client = key_client(key.raw_key)
    assert client.post(KEYS, {"name": "child", "scopes": ["jobs:create"]}, format="json").status_code == 400
    assert create_key(client, scopes=["jobs:read"])["scopes"] == ["jobs:read"]


def test_it_shows_members_only_their_own_keys_and_admins_all(as_owner, as_member, owner_key):
    mine = create_key(as_member)
    assert [k["id"] for k in as_member.get(KEYS).json()["items"]] == [mine["id"]]
    assert as_member.get(f"{KEYS}/{owner_key.id}").status_code == 404
    assert as_member.delete(f"{KEYS}/{owner_key.id}").status_code == 404
    assert {k["id"] for k in as_owner.get(KEYS).json()["items"]} == {mine["id"], str(owner_key.id)}


def test_it_hides_other_organizations_keys_with_404(as_outsider, owner_key):
    assert as_outsider.get(f"{KEYS}/{owner_key.id}").status_code == 404
    assert as_outsider.delete(f"{KEYS}/{owner_key.id}").status_code == 404
    assert as_outsider.get(KEYS).json()["total"] == 0
    owner_key.refresh_from_db()
    assert owner_key.revoked_at is None


def test_it_answers_404_for_a_malformed_id(as_owner):
    response = as_owner.get(f"{KEYS}/not-a-uuid")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_viewers_cannot_manage_keys(as_viewer):
    assert as_viewer.get(KEYS).status_code == 403
    assert as_viewer.post(KEYS, {"name": "x"}, format="json").status_code == 403


def test_it_updates_last_used_at_at_most_once_a_minute(
    owner_key, settings, django_assert_num_queries, without_request_audit
):
    settings.AUTH_CACHE_TTL = 0  # every request looks the key up in the database
    client = key_client(owner_key.raw_key)
    with django_assert_num_queries(2):  # lookup + last_used_at
        client.get(ME)
    first = ApiKey.objects.get(pk=owner_key.pk).last_used_at
    assert first is not None
    with django_assert_num_queries(1):  # lookup only
        client.get(ME)
    assert ApiKey.objects.get(pk=owner_key.pk).last_used_at == first
    ApiKey.objects.filter(pk=owner_key.pk).update(last_used_at=first - timedelta(seconds=61))
    client.get(ME)
    assert ApiKey.objects.get(pk=owner_key.pk).last_used_at > first


def test_it_lists_keys_in_a_fixed_number_of_queries(
    as_owner, org, owner, django_assert_num_queries, without_request_audit
):
    for _ in range(5):
        ApiKeyFactory(organization=org, created_by=owner)
    with django_assert_num_queries(3):  # membership, count, page (creator joined)
        response = as_owner.get(f"{KEYS}?page_size=3")
    body = response.json()
    assert body["total"] == 5 and len(body["items"]) == 3 and body["page_size"] == 3
    assert body["links"]["next"].endswith("page=2&page_size=3") or "page=2" in body["links"]["next"]


def test_it_authenticates_jwt_in_one_query(as_owner, django_assert_num_queries, without_request_audit):
    with django_assert_num_queries(1):
        assert as_owner.get(ME).status_code == 200


def test_it_throttles_per_key(owner_key, org, owner, settings):
    rates = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {**rates, "principal": "2/hour"}}
    client = key_client(owner_key.raw_key)
    assert [client.get(ME).status_code for _ in range(3)] == [200, 200, 429]
    other = ApiKeyFactory(organization=org, created_by=owner)
    assert key_client(other.raw_key).get(ME).status_code == 200  # its own bucket
    assert jwt_client(owner).get(ME).status_code == 200  # the user's JWT bucket is separate too


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_AUTHORIZATION": "garbage"},
        {"HTTP_AUTHORIZATION": "Basic dXNlcjpwdw=="},
        {"HTTP_AUTHORIZATION": "Bearer nonsense"},
        {"HTTP_X_API_KEY": "dpk_nonsense"},
    ],
)
def test_a_bad_credential_beside_a_good_key_is_401(owner_key, headers):
    client = Client()
    good = {"HTTP_X_API_KEY": owner_key.raw_key}
    if "HTTP_X_API_KEY" in headers:  # the good one in Authorization, the bad one in X-API-Key
        good = {"HTTP_AUTHORIZATION": f"Api-Key {owner_key.raw_key}"}
    client.credentials(**good, **headers)
    response = client.get("/api/v1/auth/me")
    assert response.status_code == 401, headers
    assert response.json()["error"]["code"] in {"ambiguous_credentials", "unsupported_scheme"}


def test_an_unknown_authorization_scheme_alone_is_401(anon):
    anon.credentials(HTTP_AUTHORIZATION="Token abc")
    assert anon.get("/api/v1/auth/me").json()["error"]["code"] == "unsupported_scheme"


def test_expires_at_needs_a_time_zone_offset(as_owner):
    response = as_owner.post("/api/v1/auth/api-keys", {"name": "k", "expires_at": "2099-01-01T00:00:00"}, format="json")
    assert response.status_code == 400 and "expires_at" in response.json()["error"]["details"]
    response = as_owner.post(
        "/api/v1/auth/api-keys", {"name": "k", "expires_at": "2099-01-01T00:00:00Z"}, format="json"
    )
    assert response.status_code == 201
