from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from audit.models import ActorKind, AuditLog
from tests.concurrency import in_threads
from webhooks import signing
from webhooks.models import DeliveryStatus, WebhookDelivery
from webhooks.services import deliveries_prune

PAYLOAD = {"type": "job.completed", "timestamp": "2026-01-01T00:00:00Z", "data": {}}


def delivery(org, status, *, age_days: float) -> WebhookDelivery:
    made = WebhookDelivery.objects.create(
        organization=org, url="https://example.com/hook", event_type="job.completed", payload=PAYLOAD,
        message_id=signing.new_message_id(), status=status,
    )  # fmt: skip
    WebhookDelivery.objects.filter(pk=made.pk).update(created_at=timezone.now() - timedelta(days=age_days))
    return made


def run(*args) -> str:
    out = StringIO()
    call_command("prune_webhook_deliveries", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def deliveries(org, other_org):
    return {
        "old_succeeded": delivery(org, DeliveryStatus.SUCCEEDED, age_days=31),
        "old_failed": delivery(org, DeliveryStatus.FAILED, age_days=90),
        "old_elsewhere": delivery(other_org, DeliveryStatus.SUCCEEDED, age_days=45),
        "old_pending": delivery(org, DeliveryStatus.PENDING, age_days=60),
        "old_retrying": delivery(other_org, DeliveryStatus.RETRYING, age_days=60),
        "recent_succeeded": delivery(org, DeliveryStatus.SUCCEEDED, age_days=29),
        "recent_failed": delivery(other_org, DeliveryStatus.FAILED, age_days=1),
    }


def remaining(deliveries) -> set[str]:
    left = set(WebhookDelivery.objects.values_list("pk", flat=True))
    return {name for name, item in deliveries.items() if item.pk in left}


def prune_records():
    return AuditLog.objects.filter(action="webhooks.prune_deliveries")


def test_a_dry_run_changes_nothing_and_says_what_it_would_do(deliveries):
    assert run("--older-than", "30", "--dry-run") == (
        "Dry run: 3 finished webhook deliveries older than 30 days would be deleted; nothing changed.\n"
    )
    assert remaining(deliveries) == set(deliveries)
    assert not prune_records().exists()


def test_it_deletes_exactly_the_old_finished_deliveries_of_every_organization(deliveries):
    assert run("--older-than", "30") == "3 finished webhook deliveries older than 30 days deleted.\n"
    assert remaining(deliveries) == {"old_pending", "old_retrying", "recent_succeeded", "recent_failed"}


def test_each_organization_s_prune_is_audited_as_a_system_action(deliveries, org, other_org):
    run("--older-than", "30")
    records = {record.organization_id: record for record in prune_records()}
    assert set(records) == {org.pk, other_org.pk}
    assert records[org.pk].request_details["count"] == 2 and records[other_org.pk].request_details["count"] == 1
    for record in records.values():
        assert record.actor_kind == ActorKind.SYSTEM and record.username == "system"
        assert record.resource_type == "webhook_delivery" and record.request_details["cutoff"]


def test_running_twice_is_harmless(deliveries):
    run("--older-than", "30")
    assert run("--older-than", "30") == "0 finished webhook deliveries older than 30 days deleted.\n"
    assert remaining(deliveries) == {"old_pending", "old_retrying", "recent_succeeded", "recent_failed"}
    assert prune_records().count() == 2


def test_it_works_in_batches(org):
    old = [delivery(org, DeliveryStatus.SUCCEEDED, age_days=10) for _ in range(5)]
    kept = delivery(org, DeliveryStatus.PENDING, age_days=10)
    assert deliveries_prune(older_than=7, dry_run=True, batch_size=2) == 5
    assert deliveries_prune(older_than=7, dry_run=False, batch_size=2) == 5
    assert not WebhookDelivery.objects.filter(pk__in=[item.pk for item in old]).exists()
    assert WebhookDelivery.objects.filter(pk=kept.pk).exists()
    assert sum(record.request_details["count"] for record in prune_records()) == 5
    assert prune_records().count() == 3  # one per organization per batch: 2 + 2 + 1


def test_it_refuses_a_retention_under_a_day(db):
    with pytest.raises(CommandError):
        run("--older-than", "0")


@pytest.mark.django_db(transaction=True)
def test_two_runs_at_once_delete_each_delivery_once(org):
    for _ in range(6):
        delivery(org, DeliveryStatus.FAILED, age_days=10)
    results = in_threads(lambda: deliveries_prune(older_than=7, dry_run=False, batch_size=1))
    assert sum(results) == 6 and not WebhookDelivery.objects.exists()
    assert sum(record.request_details["count"] for record in prune_records()) == 6
