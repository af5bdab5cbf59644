"""The authentication cache saves the database query and never serves a stale grant."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts import auth_cache
from accounts.models import ApiKey, Membership
from accounts.services import api_key_revoke
from pipeline_project.lib.redis import get_redis
from tests.conftest import jwt_client, key_client

ME = "/api/v1/auth/me"


@pytest.fixture
def warm_key(owner_key, django_assert_num_queries, without_request_audit):
    client = key_client(owner_key.raw_key)
    assert client.get(ME).status_code == 200  # miss: looked up and cached
    with django_assert_num_queries(0):
        assert client.get(ME).status_code == 200
    return client


def test_it_serves_api_keys_and_jwts_from_cache(warm_key, as_owner, django_assert_num_queries):
    as_owner.get(ME)
    with django_assert_num_queries(0):
        assert as_owner.get(ME).json()["organization"]["slug"] == "acme"


def test_it_caches_each_organization_of_a_user_apart(owner, other_org, django_assert_num_queries):
    Membership.objects.create(user=owner, organization=other_org, role="viewer")
    for _ in range(2):
        assert jwt_client(owner).get(ME).json()["role"] == "admin"
        assert jwt_client(owner, HTTP_X_ORGANIZATION="globex").get(ME).json()["role"] == "viewer"


def test_revoking_takes_effect_at_once(warm_key, owner_key):
    api_key_revoke(api_key=owner_key)
    assert warm_key.get(ME).json()["error"]["code"] == "api_key_revoked"


def test_revoking_through_the_api_takes_effect_at_once(warm_key, owner_key, as_owner):
    as_owner.delete(f"/api/v1/auth/api-keys/{owner_key.id}")
    assert warm_key.get(ME).status_code == 401


def test_expiry_is_checked_on_cached_keys(warm_key, owner_key):
    owner_key.expires_at = timezone.now() + timedelta(milliseconds=1)
    owner_key.save()
    warm_key.get(ME)
    owner_key.refresh_from_db()
    assert warm_key.get(ME).json()["error"]["code"] == "api_key_expired"


def test_a_role_change_narrows_cached_keys_and_tokens(warm_key, as_owner, owner):
    as_owner.get(ME)
    membership = Membership.objects.get(user=owner)
    membership.role = "viewer"
    membership.save()
    assert warm_key.get(ME).json()["permissions"] == ["jobs:read", "pipelines:read"]
    assert as_owner.get(ME).json()["role"] == "viewer"


def test_leaving_the_organization_locks_out_cached_keys_and_tokens(warm_key, as_owner, owner):
    as_owner.get(ME)
    Membership.objects.get(user=owner).delete()
    assert warm_key.get(ME).json()["error"]["code"] == "api_key_orphaned"
    assert as_owner.get(ME).json()["error"]["code"] == "not_a_member"


def test_deactivating_the_user_locks_out_cached_keys_and_tokens(warm_key, as_owner, owner):
    as_owner.get(ME)
    owner.is_active = False
    owner.save()
    assert warm_key.get(ME).status_code == 401
    assert as_owner.get(ME).status_code == 401


def test_deleting_the_key_locks_it_out(warm_key, owner_key):
    ApiKey.objects.get(pk=owner_key.pk).delete()
    assert warm_key.get(ME).json()["error"]["code"] == "invalid_api_key"


def test_entries_are_not_trusted_past_the_ttl(warm_key, owner_key, settings):
    settings.AUTH_CACHE_TTL = 1
    entry = auth_cache.api_key_entry(owner_key.prefix)
    data = auth_cache.lookup(entry)
    ApiKey.objects.filter(pk=owner_key.pk).update(revoked_at=timezone.now())  # bypasses signals
    data["cached_at"] -= 5  # as if cached 5 s ago
    get_redis().set(entry, json.dumps(data))
    auth_cache.clear_local()
    assert warm_key.get(ME).json()["error"]["code"] == "api_key_revoked"


def test_a_wrong_secret_does_not_spend_the_real_keys_quota(owner_key, settings):
    rates = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {**rates, "principal": "2/hour"}}
    forged = owner_key.raw_key[:-1] + ("A" if owner_key.raw_key[-1] != "A" else "B")
    for _ in range(3):
        assert key_client(forged).get(ME).status_code == 401
    assert key_client(owner_key.raw_key).get(ME).status_code == 200


def test_it_still_works_without_redis(owner_key, as_owner, settings, unused_tcp_port):
    settings.REDIS_URL = f"redis://127.0.0.1:{unused_tcp_port}/0"
    assert key_client(owner_key.raw_key).get(ME).status_code == 200
    assert as_owner.get(ME).status_code == 200


@pytest.mark.parametrize("cache_ttl", [0, 60])
def test_it_loads_every_user_field_right_from_database_and_cache(org, owner, owner_key, settings, cache_ttl):
    settings.AUTH_CACHE_TTL = cache_ttl
    owner.first_name, owner.last_name, owner.email = "Ada", "Lovelace", "ada@example.com"
    owner.save()
    expected = {"id": owner.id, "username": "owner", "email": "ada@example.com", "first_name": "Ada",
                "last_name": "Lovelace"}  # fmt: skip
    for client in (key_client(owner_key.raw_key), jwt_client(owner)):
        for _ in range(2):  # the second call is served from the cache when it is on
            me = client.get(ME).json()
            assert me["user"] == expected
            assert me["organization"] == {"id": str(org.id), "name": "Acme", "slug": "acme"}
