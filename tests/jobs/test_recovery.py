"""Crash recovery with a real `rqworker` process killed with SIGKILL, and reconciliation after Redis
loses its queues. The reaper runs here in the test process, as the scheduler would run it."""

import time
from datetime import timedelta
from io import StringIO

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.utils import timezone

from jobs.models import Job, JobEvent, JobResult, JobStatus
from jobs.recovery import reap_stale_jobs, reconcile_queued_jobs
from pipeline_project.lib.redis import get_redis
from tests.jobs.factories import JobFactory
from tests.jobs.workers import (
    WORKER_CLASSES,
    cancel_within_5_seconds,
    job_with,
    kill_tree,
    slow_job,
    start_rqworker,
    wait_for,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
def test_a_job_whose_worker_is_killed_is_requeued_and_completes(as_member, org, settings, run_worker, worker_class):
    job_id = slow_job(as_member, org)
    worker = start_rqworker(settings.MEDIA_ROOT, worker_class)
    try:
        wait_for(lambda: Job.objects.get(pk=job_id).status == JobStatus.PROCESSING)
        kill_tree(worker.pid)  # the worker and its work horse or parser process, mid-job
    finally:
        worker.wait(timeout=30)
    assert Job.objects.get(pk=job_id).status == JobStatus.PROCESSING  # nobody left to finish it

    assert reap_stale_jobs() == {"requeued": 0, "failed": 0, "cancelled": 0}  # heartbeat still fresh
    settings.JOB_HEARTBEAT_TIMEOUT = 1
    time.sleep(1.1)
    assert reap_stale_jobs()["requeued"] == 1
    run_worker()
    job = Job.objects.get(pk=job_id)
    assert job.status == JobStatus.COMPLETED and job.attempts == 2
    assert list(JobEvent.objects.filter(job=job).values_list("to_status", flat=True)) == [
        "queued", "processing", "queued", "processing", "completed"]  # fmt: skip


def test_after_max_attempts_a_lost_job_fails_with_worker_lost(org, settings):
    job = JobFactory(organization=org, status=JobStatus.PROCESSING, attempts=3, max_attempts=3,
                     heartbeat_at=timezone.now() - timedelta(minutes=5), progress_stage="extract_text")  # fmt: skip
    assert reap_stale_jobs()["failed"] == 1
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and job.error["code"] == "worker_lost"
    assert job.error["stage"] == "extract_text"


def test_a_cancelling_job_whose_worker_died_ends_cancelled(org):
    job = JobFactory(organization=org, status=JobStatus.CANCELLING, heartbeat_at=timezone.now() - timedelta(hours=1))
    assert reap_stale_jobs()["cancelled"] == 1
    assert Job.objects.get(pk=job.pk).status == JobStatus.CANCELLED


def test_jobs_redis_forgot_are_enqueued_again_and_complete(as_member, run_worker):
    response = as_member.post("/api/v1/upload", {"files": [SimpleUploadedFile("a.txt", b"hello world")]},
                              format="multipart")  # fmt: skip
    job_id = response.json()["jobs"][0]["id"]
    get_redis().flushdb()  # Redis restarted without persistence
    assert reconcile_queued_jobs() == 0  # too recent: its own enqueue may still be on the way
    Job.objects.filter(pk=job_id).update(updated_at=timezone.now() - timedelta(minutes=1))
    assert reconcile_queued_jobs() == 1
    assert reconcile_queued_jobs() == 0  # idempotent: it is on the queue now
    run_worker()
    assert Job.objects.get(pk=job_id).status == JobStatus.COMPLETED


def test_the_management_command_prints_a_summary(org):
    JobFactory(organization=org, status=JobStatus.PROCESSING, heartbeat_at=timezone.now() - timedelta(hours=1))
    out = StringIO()
    call_command("reap_stale_jobs", stdout=out)
    assert out.getvalue().strip() == "1 requeued, 0 failed (worker lost), 0 cancelled, 0 re-enqueued"


def test_the_command_s_dry_run_says_each_verdict_and_changes_nothing(org):
    long_ago = timezone.now() - timedelta(hours=1)
    requeue = JobFactory(organization=org, status=JobStatus.PROCESSING, heartbeat_at=long_ago)
    fail = JobFactory(organization=org, status=JobStatus.PROCESSING, attempts=3, max_attempts=3, heartbeat_at=long_ago)
    cancel = JobFactory(organization=org, status=JobStatus.CANCELLING, heartbeat_at=long_ago)
    JobFactory(organization=org, status=JobStatus.PROCESSING, heartbeat_at=timezone.now())  # alive: left alone
    lost = JobFactory(organization=org, status=JobStatus.QUEUED)
    Job.objects.filter(pk=lost.pk).update(updated_at=long_ago)  # queued, and Redis never heard of it
    events = JobEvent.objects.count()
    out = StringIO()
    call_command("reap_stale_jobs", "--dry-run", stdout=out)
    summary = "1 requeued, 1 failed (worker lost), 1 cancelled, 1 re-enqueued"
    assert out.getvalue().strip() == f"Dry run: would be {summary}; nothing changed."
    statuses = dict(Job.objects.values_list("pk", "status"))
    assert [statuses[job.pk] for job in (requeue, fail, cancel, lost)] == ["processing", "processing", "cancelling",
                                                                           "queued"]  # fmt: skip
    assert JobEvent.objects.count() == events and not get_redis().keys("rq:job:*")


@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
def test_cancelling_a_job_in_a_long_stage_ends_it_within_5_seconds(as_member, org, settings, worker_class):
    job_id = job_with(as_member, org, [{"name": "slow", "params": {"seconds": 600}}])
    worker = start_rqworker(settings.MEDIA_ROOT, worker_class)
    try:
        wait_for(lambda: Job.objects.get(pk=job_id).progress_stage == "slow")  # inside the long stage
        cancel_within_5_seconds(as_member, job_id)
    finally:
        kill_tree(worker.pid)
        worker.wait(timeout=30)
    job = Job.objects.get(pk=job_id)
    assert not JobResult.objects.filter(job=job).exists()  # partial outputs removed
    assert list(job.files.values_list("status", "result")) == [("pending", None)]
    assert list(JobEvent.objects.filter(job=job).values_list("to_status", flat=True))[-2:] == [
        "cancelling", "cancelled"]  # fmt: skip


def test_a_job_enqueued_again_does_not_keep_the_expiry_rq_gave_its_earlier_attempt(as_member, run_worker):
    from rq.job import Job as RQJob

    from jobs import queueing

    response = as_member.post("/api/v1/jobs", {"source_type": "text", "text": "hello"}, format="json")
    job_id = response.json()["id"]
    run_worker()  # RQ now holds the finished job, to expire in result_ttl
    key = RQJob.key_for(job_id)
    assert get_redis().ttl(key) > 0
    queueing.requeue(job_id, "default")  # as the reaper and the reconciler do
    assert get_redis().ttl(key) == -1 and job_id in queueing.queue("default").job_ids
