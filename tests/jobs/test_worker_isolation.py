"""The crash matrix, with real `rqworker` processes of our class (``jobs.worker.Worker``): a parser
that aborts, segfaults, blocks in C code, blows up memory or is killed takes down only its
parser child; the job ends with a clear code and the worker runs the next job. And fencing: a
worker frozen mid-job, whose job was requeued and completed elsewhere, writes nothing when it
wakes up."""

import os
import signal
import time

import pytest

from jobs.models import Job, JobEvent, JobResult, JobStatus
from jobs.recovery import reap_stale_jobs
from tests.jobs.workers import children, job_with, kill_tree, start_rqworker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)
FINISHED = (JobStatus.COMPLETED, JobStatus.FAILED)


def plain_job(client) -> str:
    response = client.post("/api/v1/jobs", {"source_type": "text", "text": "The next job."}, format="json")
    return response.json()["id"]


def finished(*job_ids) -> bool:
    return Job.objects.filter(pk__in=job_ids, status__in=FINISHED).count() == len(job_ids)


@pytest.fixture
def worker(settings):
    processes = []

    def start(**env):
        processes.append(start_rqworker(settings.MEDIA_ROOT, **env))
        return processes[-1]

    yield start
    for process in processes:
        kill_tree(process.pid)
        process.wait(timeout=30)


def test_crashing_parsers_fail_their_job_only_and_the_worker_runs_the_next(as_member, org, worker, tmp_path):
    once = {"attempts": 1}
    jobs = {
        ("parser_crashed", "SIGABRT"): job_with(as_member, org, [{"name": "crash_abort", "retry": once}]),
        ("parser_crashed", "SIGSEGV"): job_with(as_member, org, [{"name": "crash_segfault", "retry": once}]),
        ("stage_timeout", "1 s"): job_with(as_member, org, [{"name": "crash_hang", "timeout_seconds": 1}]),
        ("memory_limit_exceeded", "512 MiB"): job_with(
            as_member, org, [{"name": "crash_memory", "params": {"mb": 2048}, "retry": once}]
        ),
        ("internal_error", "ValueError"): job_with(as_member, org, [{"name": "crash_exception"}]),
    }
    retried = job_with(as_member, org, [{"name": "crash_flaky", "params": {"marker": str(tmp_path / "marker")},
                                         "retry": {"attempts": 2, "backoff_seconds": 0, "crashes": True}}])  # fmt: skip
    after = plain_job(as_member)
    process = worker(WORKER_CHILD_MAX_MEMORY="512M")
    wait_for(lambda: finished(*jobs.values(), retried, after), timeout=120)

    assert process.poll() is None, "the worker died"
    for (code, detail), job_id in jobs.items():
        job = Job.objects.get(pk=job_id)
        assert job.status == JobStatus.FAILED and job.error["code"] == code, (code, job.error)
        assert detail in job.error["message"] and job.error["stage"].startswith("crash_"), job.error
    assert Job.objects.get(pk=retried).status == JobStatus.COMPLETED  # its crash was retried in a fresh process
    assert Job.objects.get(pk=after).status == JobStatus.COMPLETED


def test_a_parser_process_killed_mid_document_fails_the_job_and_is_replaced(as_member, org, worker):
    job_id = job_with(as_member, org, [{"name": "slow"}])
    process = worker()
    wait_for(lambda: Job.objects.get(pk=job_id).progress_stage == "slow")
    (parser,) = children(process.pid)
    os.kill(parser, signal.SIGKILL)
    wait_for(lambda: finished(job_id))
    job = Job.objects.get(pk=job_id)
    assert job.error["code"] == "parser_crashed" and job.error["stage"] == "slow"
    assert "SIGKILL" in job.error["message"]

    after = plain_job(as_member)
    wait_for(lambda: finished(after))
    assert Job.objects.get(pk=after).status == JobStatus.COMPLETED and process.poll() is None
    assert children(process.pid) != [parser]


def test_a_frozen_worker_whose_job_was_requeued_writes_nothing_when_it_wakes(as_member, org, worker, settings,
                                                                           run_worker, crash_stages):  # fmt: skip
    job_id = job_with(as_member, org, [{"name": "slow", "params": {"seconds": 3}}])
    process = worker()
    wait_for(lambda: Job.objects.get(pk=job_id).progress_stage == "slow")
    os.killpg(process.pid, signal.SIGSTOP)  # the worker and its parser process stall (a long GC, a slow disk)
    try:
        settings.JOB_HEARTBEAT_TIMEOUT = 1
        time.sleep(1.5)
        assert reap_stale_jobs()["requeued"] == 1
        run_worker()  # attempt 2, here
        job = Job.objects.get(pk=job_id)
        assert job.status == JobStatus.COMPLETED and job.attempts == 2
        events = list(JobEvent.objects.filter(job_id=job_id).values_list("to_status", flat=True))
    finally:
        os.killpg(process.pid, signal.SIGCONT)

    after = plain_job(as_member)  # the woken worker drops attempt 1 at its first write, then runs this
    wait_for(lambda: finished(after))
    assert Job.objects.get(pk=after).status == JobStatus.COMPLETED
    assert events == ["queued", "processing", "queued", "processing", "completed"]
    assert list(JobEvent.objects.filter(job_id=job_id).values_list("to_status", flat=True)) == events
    assert JobResult.objects.filter(job_id=job_id).count() == 1
    assert Job.objects.get(pk=job_id).attempts == 2
