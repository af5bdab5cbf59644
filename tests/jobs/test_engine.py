"""The engine's round trips and its fenced claims, in process."""

import uuid
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from jobs import engine
from jobs.models import Job, JobEvent, JobFile, JobResult, JobStatus
from jobs.recovery import reap_stale_jobs
from jobs.services import (
    CancelRequested,
    ClaimLost,
    job_claim,
    job_complete,
    job_fail,
    job_finish_cancelled,
    job_heartbeat,
    job_progress,
)
from pipelines.isolation import ParserPool

pytestmark = pytest.mark.django_db(transaction=True)
WRITES = ("INSERT", "UPDATE", "DELETE")


class Counter:
    """Statements sent, and transactions committed: ``atomic`` blocks plus writes in autocommit."""

    def __init__(self):
        self.statements: list[str] = []
        self.commits = 0

    def __call__(self, execute, sql, params, many, context):
        self.statements.append(sql)
        if not connection.in_atomic_block and sql.lstrip().upper().startswith(WRITES):
            self.commits += 1
        return execute(sql, params, many, context)


@contextmanager
def counting(monkeypatch):
    counter, commit = Counter(), connection.commit

    def counted_commit():
        counter.commits += 1
        commit()

    monkeypatch.setattr(connection, "commit", counted_commit)
    with connection.execute_wrapper(counter):
        yield counter


def text_job(client, text="hello world", stages=({"name": "noop"},)) -> str:
    name = f"p-{uuid.uuid4().hex[:8]}"
    pipeline = client.post("/api/v1/pipelines", {"name": name, "config": {"stages": list(stages)}}, format="json")
    assert pipeline.status_code == 201, pipeline.content
    response = client.post("/api/v1/jobs", {"source_type": "text", "text": text,
                                            "pipeline_id": pipeline.json()["id"]}, format="json")  # fmt: skip
    assert response.status_code == 201, response.content
    return response.json()["id"]


@pytest.fixture(params=["parser child", "in process"])
def parsers(request):
    """The engine as our worker class runs it (stages in a parser child), and as a stock RQ worker does."""
    pool = ParserPool() if request.param == "parser child" else None
    engine.use_parser_pool(pool)
    yield pool
    engine.use_parser_pool(None)
    if pool is not None:
        pool.close()


def test_a_one_file_one_stage_job_takes_10_statements_and_2_commits(as_owner, monkeypatch, parsers):
    job_id = text_job(as_owner)
    connection.ensure_connection()
    with counting(monkeypatch) as counter:
        assert engine.job_process(job_id) == JobStatus.COMPLETED
    # claim, its event, its files (marked processing), who listens to job.started (webhooks); the result cache;
    # the job, its event, its result, its file, who listens to job.completed
    assert len(counter.statements) == 10, "\n".join(counter.statements)
    assert counter.commits == 2


def test_a_job_is_claimed_once(as_owner):
    job_id = text_job(as_owner)
    (first, files), second = job_claim(job_id, worker="w-1"), job_claim(job_id, worker="w-2")
    assert first.attempts == 1 and first.locked_by == "w-1" and second is None
    assert [(f.original_name, f.status) for f in files] == [("input.txt", "processing")]
    assert list(JobEvent.objects.filter(job_id=job_id).values_list("to_status", "message")) == [
        ("queued", "created"), ("processing", "claimed by w-1")]  # fmt: skip


def test_a_requeued_job_whose_old_worker_wakes_up_gets_nothing_written(as_owner, run_worker):
    job_id = text_job(as_owner, stages=[{"name": "detect"}, {"name": "extract_text"}])
    stale, _ = job_claim(job_id, worker="w-old")  # attempt 1, whose worker then stalls
    Job.objects.filter(pk=job_id).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    assert reap_stale_jobs()["requeued"] == 1
    run_worker()  # attempt 2
    job = Job.objects.get(pk=job_id)
    assert job.status == JobStatus.COMPLETED and job.attempts == 2

    def state():
        return (
            list(Job.objects.filter(pk=job_id).values()),
            list(JobEvent.objects.filter(job_id=job_id).values()),
            list(JobResult.objects.filter(job_id=job_id).values()),
            list(JobFile.objects.filter(job_id=job_id).values()),
        )

    before = state()
    stale_writes = [
        lambda: job_progress(stale, done=1, total=2, stage="extract_text"),
        lambda: job_heartbeat(stale),
        lambda: job_complete(stale, files=[], text="stale", stages=2),
        lambda: job_fail(stale, code="internal_error", message="stale", stage=None),
        lambda: job_finish_cancelled(stale),
    ]
    for write in stale_writes:
        with pytest.raises(ClaimLost):
            write()
    assert state() == before


def test_a_cancelled_job_is_noticed_at_the_next_write_and_finished_only_from_cancelling(as_owner):
    job_id = text_job(as_owner)
    job, _ = job_claim(job_id, worker="w-1")
    with pytest.raises(ClaimLost):  # not cancelling: nothing to finish
        job_finish_cancelled(job)
    assert as_owner.delete(f"/api/v1/jobs/{job_id}").status_code == 204
    assert Job.objects.get(pk=job_id).status == JobStatus.CANCELLING
    with pytest.raises(CancelRequested):
        job_heartbeat(job)
    job_finish_cancelled(job)
    assert Job.objects.get(pk=job_id).status == JobStatus.CANCELLED


def test_a_job_past_rqs_timeout_fails_with_job_timeout_and_the_worker_goes_on(as_owner, settings, run_worker,
                                                                            crash_stages):  # fmt: skip
    settings.RQ_DEFAULT_TIMEOUT = 1  # RQ's job timeout (SIGALRM in the worker); the stage's own is 300 s
    job_id = text_job(as_owner, stages=[{"name": "slow", "params": {"seconds": 30}}])
    after = text_job(as_owner, text="the next job", stages=[{"name": "detect"}])
    run_worker()
    job = Job.objects.get(pk=job_id)
    assert job.status == JobStatus.FAILED and (job.error["code"], job.error["stage"]) == ("job_timeout", "slow")
    assert Job.objects.get(pk=after).status == JobStatus.COMPLETED
