"""cleanup_uploads: the stored inputs of jobs past UPLOAD_RETENTION go (never those a live retry
shares), orphan uploads go after a grace period, and a job whose inputs went cannot be retried."""

import io
import os
import time
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.utils import timezone

from audit.models import ActorKind, AuditLog
from jobs.models import Job, JobFile, JobResult, JobStatus
from jobs.services import job_uploads_delete
from tests.concurrency import in_threads

pytestmark = pytest.mark.django_db(transaction=True)  # batches commit; stored objects go after commit

JOBS = "/api/v1/jobs"
LONG_AGO = timedelta(days=8)  # past the default UPLOAD_RETENTION (7 days)


def text_job(client, text="hello") -> Job:
    response = client.post(JOBS, {"source_type": "text", "text": text}, format="json")
    assert response.status_code == 201, response.content
    return Job.objects.get(pk=response.json()["id"])


def ended(job: Job, status=JobStatus.FAILED, ago=LONG_AGO) -> Job:
    Job.objects.filter(pk=job.pk).update(status=status, completed_at=timezone.now() - ago)
    job.refresh_from_db()
    return job


def stored(job: Job) -> str:
    return job.files.get().storage_name


def exists(name: str) -> bool:
    return default_storage.exists(name)


def orphan(name: str, *, age: timedelta) -> str:
    name = default_storage.save(name, ContentFile(b"left behind"))
    moment = time.time() - age.total_seconds()
    os.utime(default_storage.path(name), (moment, moment))
    return name


def command(*args) -> str:
    out = io.StringIO()
    call_command("cleanup_uploads", *args, stdout=out)
    return out.getvalue().strip()


def test_a_dry_run_says_what_would_go_and_changes_nothing(as_member, org):
    job = ended(text_job(as_member))
    left = orphan(f"uploads/{org.pk}/gone-job/0/a.txt", age=timedelta(days=2))
    assert command("--dry-run") == (
        "Dry run: 1 stored input file of 1 job past UPLOAD_RETENTION and 1 orphan file would be deleted; "
        "nothing changed."
    )
    assert exists(stored(job)) and exists(left)
    assert not JobFile.objects.filter(storage_deleted_at__isnull=False).exists()
    assert not AuditLog.objects.filter(action__startswith="jobs.").exclude(action="jobs.create").exists()


def test_it_deletes_exactly_the_inputs_past_retention_and_keeps_what_a_live_retry_shares(as_member, org):
    failed, cancelled = ended(text_job(as_member, "a")), ended(text_job(as_member, "b"), JobStatus.CANCELLED)
    result_expired = ended(text_job(as_member, "c"), JobStatus.COMPLETED)
    with_result = ended(text_job(as_member, "d"), JobStatus.COMPLETED)
    JobResult.objects.create(job=with_result, extracted_text="d")
    recent = ended(text_job(as_member, "e"), ago=timedelta(days=1))
    queued = text_job(as_member, "f")
    retried = ended(text_job(as_member, "g"))
    retry = as_member.post(f"{JOBS}/{retried.pk}/retry", {}, format="json").json()  # queued: still needs the file
    assert stored(Job.objects.get(pk=retry["id"])) == stored(retried)

    assert command() == "3 stored input files of 3 jobs past UPLOAD_RETENTION and 0 orphan files deleted."

    for job in (failed, cancelled, result_expired):
        assert not exists(stored(job)) and job.files.get().storage_deleted_at is not None
    for job in (with_result, recent, queued, retried):
        assert exists(stored(job)) and job.files.get().storage_deleted_at is None
    # Once the retry ends too, past retention, the shared object goes, once.
    ended(Job.objects.get(pk=retry["id"]))
    assert command() == "1 stored input file of 2 jobs past UPLOAD_RETENTION and 0 orphan files deleted."
    assert not exists(stored(retried))


def test_orphans_go_after_the_grace_period_and_results_stay(as_member, org, settings):
    old = orphan(f"uploads/{org.pk}/deleted-job/1/old.pdf", age=timedelta(days=2))
    young = orphan(f"uploads/{org.pk}/uploading-job/2/new.pdf", age=timedelta(minutes=5))
    result = orphan(f"results/{org.pk}/some-job/text.txt", age=timedelta(days=60))
    held = ended(text_job(as_member), ago=timedelta(hours=1))  # its file is old enough, but held
    os.utime(default_storage.path(stored(held)), (time.time() - 5 * 86400,) * 2)

    assert command() == "0 stored input files of 0 jobs past UPLOAD_RETENTION and 1 orphan file deleted."
    assert not exists(old) and exists(young) and exists(result) and exists(stored(held))
    record = AuditLog.objects.get(action="jobs.orphan_uploads_deleted")
    assert record.organization_id is None and record.actor_kind == ActorKind.SYSTEM
    assert record.request_details == {"count": 1, "files": [old]}


def test_a_second_run_does_nothing(as_member):
    ended(text_job(as_member))
    command()
    records = AuditLog.objects.count()
    assert command() == "0 stored input files of 0 jobs past UPLOAD_RETENTION and 0 orphan files deleted."
    assert AuditLog.objects.count() == records


def test_two_runs_at_once_take_each_job_once(as_member, org):
    jobs = [ended(text_job(as_member, f"text {index}")) for index in range(6)]
    outcomes = in_threads(lambda: job_uploads_delete(batch_size=1))
    assert sum(outcome.jobs for outcome in outcomes) == 6 and sum(outcome.files for outcome in outcomes) == 6
    assert not any(exists(stored(job)) for job in jobs)
    audited = AuditLog.objects.filter(action="jobs.uploads_deleted").values_list("request_details", flat=True)
    assert sum(details["count"] for details in audited) == 6


def test_a_job_whose_inputs_went_cannot_be_retried(as_member):
    job = ended(text_job(as_member))
    command()
    response = as_member.post(f"{JOBS}/{job.pk}/retry", {}, format="json")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "inputs_deleted" and "UPLOAD_RETENTION" in error["message"]
    assert Job.objects.count() == 1


def test_a_run_is_audited_per_organization_not_per_file(as_member, as_outsider, org, other_org):
    mine = [ended(text_job(as_member, f"mine {index}")) for index in range(3)]
    theirs = ended(text_job(as_outsider))
    command()
    records = AuditLog.objects.filter(action="jobs.uploads_deleted")
    assert records.count() == 2
    record = records.get(organization_id=org.pk)
    assert (record.actor_kind, record.username, record.resource_type) == (ActorKind.SYSTEM, "system", "job_file")
    assert record.request_details["count"] == 3 and record.request_details["files"] == 3
    assert sorted(record.request_details["jobs"]) == sorted(str(job.pk) for job in mine)
    assert records.get(organization_id=other_org.pk).request_details["jobs"] == [str(theirs.pk)]


def test_the_scheduler_runs_it_daily():
    from rq.cron import CronScheduler

    from pipeline_project.lib.redis import get_redis

    scheduler = CronScheduler(connection=get_redis())
    scheduler.load_config_from_file("pipeline_project.cron")
    job = next(job for job in scheduler.get_jobs() if job.name == "cleanup_uploads")
    assert (job.func_name, job.queue_name, job.interval) == ("jobs.tasks.cleanup_uploads", "low", 86400)
