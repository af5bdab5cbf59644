from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from accounts.models import ApiKey
from accounts.services import api_keys_expire
from audit.models import ActorKind, AuditLog
from tests.concurrency import in_threads
from tests.conftest import key_client
from tests.factories import ApiKeyFactory

ME = "/api/v1/auth/me"


def run(*args) -> str:
    out = StringIO()
    call_command("expire_api_keys", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def keys(org, owner, other_org, outsider):
    now = timezone.now()
    return {
        "expired": ApiKeyFactory(organization=org, created_by=owner, expires_at=now - timedelta(minutes=1)),
        "expired_long_ago": ApiKeyFactory(organization=org, created_by=owner, expires_at=now - timedelta(days=40)),
        "expired_elsewhere": ApiKeyFactory(organization=other_org, created_by=outsider,
                                           expires_at=now - timedelta(hours=1)),
        "valid": ApiKeyFactory(organization=org, created_by=owner, expires_at=now + timedelta(days=1)),
        "no_expiry": ApiKeyFactory(organization=org, created_by=owner),
        "revoked": ApiKeyFactory(organization=org, created_by=owner, expires_at=now - timedelta(days=2),
                                 revoked_at=now - timedelta(days=3)),
    }  # fmt: skip


def revoked_at(keys) -> dict:
    return {name: ApiKey.objects.get(pk=key.pk).revoked_at for name, key in keys.items()}


def expiry_records():
    return AuditLog.objects.filter(action="api_keys.expire")


def test_a_dry_run_changes_nothing_and_says_what_it_would_do(keys):
    before = revoked_at(keys)
    assert run("--dry-run") == "Dry run: 3 expired API keys would be revoked; nothing changed.\n"
    assert revoked_at(keys) == before
    assert not expiry_records().exists()


def test_it_revokes_exactly_the_expired_keys_of_every_organization(keys):
    before = revoked_at(keys)
    assert run() == "3 expired API keys revoked.\n"
    after = revoked_at(keys)
    assert {name for name, value in after.items() if value is not None and before[name] is None} == {
        "expired", "expired_long_ago", "expired_elsewhere"
    }  # fmt: skip
    assert after["valid"] is None and after["no_expiry"] is None
    assert after["revoked"] == before["revoked"]  # an earlier revocation is kept as it was


def test_each_revocation_is_audited_as_a_system_action(keys):
    run()
    records = {record.resource_id: record for record in expiry_records()}
    expected = {"expired", "expired_long_ago", "expired_elsewhere"}
    assert set(records) == {str(keys[name].pk) for name in expected}
    for name in expected:
        record, key = records[str(keys[name].pk)], keys[name]
        assert record.actor_kind == ActorKind.SYSTEM and record.username == "system"
        assert record.resource_type == "api_key" and record.organization_id == key.organization_id
        assert record.request_details["prefix"] == key.prefix
        assert record.request_details["name"] == key.name


def test_an_expired_key_is_refused_at_once_even_when_cached(org, owner):
    key = ApiKeyFactory(organization=org, created_by=owner, expires_at=timezone.now() + timedelta(days=1))
    client = key_client(key.raw_key)
    assert client.get(ME).status_code == 200  # now in the auth cache, with its old expiry
    ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))  # no signal
    run()
    response = client.get(ME)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "api_key_revoked"


def test_running_twice_is_harmless(keys):
    run()
    first = revoked_at(keys)
    assert run() == "0 expired API keys revoked.\n"
    assert revoked_at(keys) == first
    assert expiry_records().count() == 3


def test_it_works_in_batches(org, owner):
    expired = [ApiKeyFactory(organization=org, created_by=owner, expires_at=timezone.now() - timedelta(hours=1))
               for _ in range(5)]  # fmt: skip
    assert api_keys_expire(dry_run=True, batch_size=2) == 5
    assert api_keys_expire(dry_run=False, batch_size=2) == 5
    assert not ApiKey.objects.filter(pk__in=[key.pk for key in expired], revoked_at__isnull=True).exists()
    assert expiry_records().count() == 5
    assert run("--batch-size", "2") == "0 expired API keys revoked.\n"


@pytest.mark.django_db(transaction=True)
def test_two_runs_at_once_revoke_each_key_once(org, owner):
    expired = [ApiKeyFactory(organization=org, created_by=owner, expires_at=timezone.now() - timedelta(hours=1))
               for _ in range(6)]  # fmt: skip
    results = in_threads(lambda: api_keys_expire(dry_run=False, batch_size=1))
    assert sum(results) == 6
    assert not ApiKey.objects.filter(pk__in=[key.pk for key in expired], revoked_at__isnull=True).exists()
    assert sorted(expiry_records().values_list("resource_id", flat=True)) == sorted(str(key.pk) for key in expired)
