"""The hash chain: intact on untouched data (also when many processes write at once), an edited
or deleted record named by ``verify_audit_chain``, pruning recorded and still verifiable."""

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from audit import chain
from audit.models import ActorKind, AuditChainHead, AuditLog
from audit.services import audit_record
from tests.concurrency import in_threads

pytestmark = pytest.mark.django_db(transaction=True)


def records(org, count: int, **fields) -> list[AuditLog]:
    return [
        audit_record(
            action="jobs.create",
            actor_kind=ActorKind.USER,
            organization_id=org.pk,
            resource_type="job",
            resource_id=str(index),
            request_details={"n": index, "ü": [1, "two"]},
            **fields,
        )  # fmt: skip
        for index in range(count)
    ]


def verify(*args) -> tuple[str, str]:
    from io import StringIO

    out, err = StringIO(), StringIO()
    call_command("verify_audit_chain", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_records_are_chained_per_organization(org, other_org):
    ours, theirs = records(org, 3), records(other_org, 2)
    assert [record.seq for record in ours] == [1, 2, 3] and [record.seq for record in theirs] == [1, 2]
    assert ours[0].prev_hash == chain.GENESIS and ours[1].prev_hash == ours[0].hash
    stored = AuditLog.objects.get(pk=ours[2].pk)
    assert stored.hash == chain.link(stored.prev_hash, chain.content_digest(stored)) == ours[2].hash
    out, _ = verify()
    assert f"{org.slug}: 3 records, chain intact" in out and f"{other_org.slug}: 2 records, chain intact" in out


def test_concurrent_writers_keep_one_unbroken_chain(org):
    in_threads(lambda: records(org, 25), count=6)
    assert sorted(AuditLog.objects.filter(organization_id=org.pk).values_list("seq", flat=True)) == list(range(1, 151))
    assert chain.verify(str(org.pk)) == (150, None)


def test_an_edited_record_is_named(org):
    edited = records(org, 5)[2]
    AuditLog.objects.filter(pk=edited.pk).update(success=False)  # as someone with database access would
    with pytest.raises(CommandError, match=str(edited.pk)):
        verify("--organization", org.slug)
    checked, found = chain.verify(str(org.pk))
    assert checked == 2 and found.record.pk == edited.pk and "edited" in found.reason


def test_an_edited_hash_is_named_too(org):
    edited = records(org, 4)[1]
    with connection.cursor() as cursor:
        cursor.execute("UPDATE audit_logs SET hash = %s WHERE id = %s", ["f" * 64, edited.pk])
    assert chain.verify(str(org.pk))[1].record.pk == edited.pk


def test_a_deleted_record_is_named_by_the_one_after_it(org):
    written = records(org, 5)
    AuditLog.objects.filter(pk=written[2].pk).delete()
    _, found = chain.verify(str(org.pk))
    assert found.record.pk == written[3].pk and "seq 3" in found.reason and "missing" in found.reason


def test_deleting_the_newest_or_the_oldest_records_is_found(org, other_org):
    written = records(org, 3)
    AuditLog.objects.filter(pk=written[2].pk).delete()
    assert "head" in str(chain.verify(str(org.pk))[1])
    theirs = records(other_org, 3)
    AuditLog.objects.filter(pk=theirs[0].pk).delete()
    assert chain.verify(str(other_org.pk))[1].record.pk == theirs[1].pk


def test_prune_deletes_the_oldest_records_records_it_and_the_chain_stays_verifiable(org):
    old = records(org, 4, timestamp=timezone.now() - timedelta(days=40))
    recent = records(org, 2)
    call_command("prune_audit_logs", "--older-than", "30")
    assert not AuditLog.objects.filter(pk__in=[record.pk for record in old]).exists()
    assert AuditLog.objects.filter(pk__in=[record.pk for record in recent]).count() == 2
    pruned = AuditLog.objects.get(action=chain.PRUNED)
    assert (pruned.actor_kind, pruned.request_details["deleted"], pruned.request_details["through_seq"]) == (
        ActorKind.SYSTEM, 4, 4)  # fmt: skip
    assert chain.verify(str(org.pk)) == (3, None)
    # Deleting more of the oldest by hand is not a prune: found.
    AuditLog.objects.filter(pk=recent[0].pk).delete()
    assert chain.verify(str(org.pk))[1].record.pk == recent[1].pk


def prune(*args) -> str:
    from io import StringIO

    out = StringIO()
    call_command("prune_audit_logs", *args, stdout=out)
    return out.getvalue().strip()


def test_prune_s_dry_run_counts_and_changes_nothing(org, other_org):
    records(org, 3, timestamp=timezone.now() - timedelta(days=40))
    records(other_org, 2, timestamp=timezone.now() - timedelta(days=40))
    records(org, 1)
    before = list(AuditLog.objects.order_by("pk").values_list("pk", "hash"))
    assert prune("--older-than", "30", "--dry-run") == (
        "Dry run: 5 audit records older than 30 days would be deleted; nothing changed.")  # fmt: skip
    assert list(AuditLog.objects.order_by("pk").values_list("pk", "hash")) == before


def test_two_prunes_at_once_delete_each_record_once_and_record_one_prune(org):
    old = records(org, 30, timestamp=timezone.now() - timedelta(days=40))
    records(org, 1)
    from audit.services import audit_logs_prune

    counts = in_threads(lambda: audit_logs_prune(older_than=30, batch_size=4), count=2)
    assert sum(counts) == 30
    assert not AuditLog.objects.filter(pk__in=[record.pk for record in old]).exists()
    assert AuditLog.objects.filter(action=chain.PRUNED).count() == 1
    assert chain.verify(str(org.pk)) == (2, None)
    assert prune("--older-than", "30") == "0 audit records older than 30 days deleted."  # idempotent


def test_a_prune_cut_off_mid_way_stays_verifiable_and_the_next_run_finishes_it(org):
    old = records(org, 6, timestamp=timezone.now() - timedelta(days=40))
    records(org, 1)
    from audit.services import audit_logs_prune

    class CutOff(Exception):
        pass

    def die_after_first_batch(count):
        raise CutOff

    with pytest.raises(CutOff):
        audit_logs_prune(older_than=30, batch_size=2, progress=die_after_first_batch)
    assert AuditLog.objects.filter(pk__in=[record.pk for record in old]).count() == 4
    assert chain.verify(str(org.pk)) == (6, None)  # 4 old + the recent one + the prune record
    assert prune("--older-than", "30") == "4 audit records older than 30 days deleted."
    assert AuditLog.objects.filter(action=chain.PRUNED).count() == 1  # the first run's record stands
    assert chain.verify(str(org.pk)) == (2, None)


def test_the_scheduled_prune_keeps_audit_log_retention_days_and_zero_keeps_all(org, settings):
    from audit.tasks import prune_logs

    records(org, 2, timestamp=timezone.now() - timedelta(days=400))
    settings.AUDIT_LOG_RETENTION = 0
    assert prune_logs() == 0
    settings.AUDIT_LOG_RETENTION = 365
    assert prune_logs() == 2
    assert chain.verify(str(org.pk)) == (1, None)


def test_nothing_in_the_api_changes_or_deletes_records(as_owner, org):
    [record] = records(org, 1)
    for method in ("put", "patch", "delete"):
        assert getattr(as_owner, method)(f"/api/v1/audit/logs/{record.pk}").status_code == 405
    assert AuditLog.objects.filter(pk=record.pk).exists()


def test_prune_refuses_nonsense(org):
    with pytest.raises(CommandError):
        call_command("prune_audit_logs", "--older-than", "0")
    with pytest.raises(CommandError, match="slug"):
        verify("--organization", "no-such-org")
    assert not AuditChainHead.objects.exists()
