import threading
import time

import pytest
from django.db import connection

from jobs.confirmation import cancel_token
from jobs.models import Job, JobEvent, JobStatus
from jobs.services import job_cancel, job_start
from pipeline_project.lib.errors import ConflictError, InvalidStateError
from tests.conftest import jwt_client
from tests.jobs.factories import JobFactory

JOBS = "/api/v1/jobs"


def cancel(client, job, **data):
    return client.post(f"{JOBS}/{job.id}/cancel", data, format="json")


def test_cancel_asks_for_confirmation_first(as_member, org):
    job = JobFactory(organization=org)
    response = cancel(as_member, job)
    assert response.status_code == 202
    body = response.json()
    assert body["expires_in"] == 120 and body["confirm_token"]
    assert body["will_lose"]["status"] == "queued" and body["will_lose"]["becomes"] == "cancelled"
    assert Job.objects.get(pk=job.pk).status == JobStatus.QUEUED  # nothing happened yet


def test_cancel_with_the_token_cancels_a_queued_job_and_removes_it_from_rq(
    as_member, member, org, rq_queue, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        job_id = as_member.post(JOBS, {"source_type": "url", "source_uri": "https://e.com/a"}, format="json").json()[
            "id"
        ]
    assert rq_queue("default") == [job_id]
    job = Job.objects.get(pk=job_id)
    token = cancel(as_member, job).json()["confirm_token"]
    with django_capture_on_commit_callbacks(execute=True):
        response = cancel(as_member, job, confirm_token=token)
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and job.completed_at is not None
    assert rq_queue("default") == []
    assert list(JobEvent.objects.filter(job=job).values_list("from_status", "to_status", "actor")) == [
        ("", "queued", f"user:{member.id}"),
        ("queued", "cancelled", f"user:{member.id}"),
    ]


def test_a_processing_job_becomes_cancelling(as_member, org):
    job = JobFactory(organization=org, status=JobStatus.PROCESSING)
    token = cancel(as_member, job).json()["confirm_token"]
    assert cancel(as_member, job, confirm_token=token).json()["status"] == "cancelling"


@pytest.mark.parametrize("token", ["garbage", "x:y:z"])
def test_a_bad_token_is_a_400(as_member, org, token):
    job = JobFactory(organization=org)
    response = cancel(as_member, job, confirm_token=token)
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_confirm_token"
    assert Job.objects.get(pk=job.pk).status == JobStatus.QUEUED


def test_a_token_is_bound_to_its_job_and_caller(as_member, owner, org):
    job, other = JobFactory(organization=org), JobFactory(organization=org)
    token = cancel(as_member, job).json()["confirm_token"]
    assert cancel(as_member, other, confirm_token=token).status_code == 400
    assert cancel(jwt_client(owner), job, confirm_token=token).status_code == 400


def test_an_expired_token_is_a_400(as_member, member, org, monkeypatch):
    job = JobFactory(organization=org)
    token = cancel_token(job_id=job.id, actor=f"user:{member.id}")
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 121)
    response = cancel(as_member, job, confirm_token=token)
    assert response.status_code == 400 and "expired" in response.json()["error"]["message"]


@pytest.mark.parametrize("status", [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.CANCELLING])
def test_finished_or_cancelling_jobs_cannot_be_cancelled(as_member, org, status):
    job = JobFactory(organization=org, status=status)
    response = cancel(as_member, job)
    assert response.status_code == 409 and response.json()["error"]["code"] == "invalid_state"
    assert as_member.delete(f"{JOBS}/{job.id}").status_code == 409


def test_delete_cancels_at_once_and_keeps_the_row(as_member, org):
    job = JobFactory(organization=org)
    assert as_member.delete(f"{JOBS}/{job.id}").status_code == 204
    assert Job.objects.get(pk=job.pk).status == JobStatus.CANCELLED


def test_permissions_and_organizations(as_viewer, as_outsider, org):
    job = JobFactory(organization=org)
    assert cancel(as_viewer, job).status_code == 403
    assert as_viewer.delete(f"{JOBS}/{job.id}").status_code == 403
    assert cancel(as_outsider, job).status_code == 404
    assert as_outsider.delete(f"{JOBS}/{job.id}").status_code == 404


def race(job: Job) -> dict[str, str]:
    """Runs job_cancel and job_start on ``job`` at the same moment, on two connections."""
    barrier, outcomes = threading.Barrier(2), {}

    def run(name, action):
        try:
            barrier.wait()
            action(job=job, actor=name)
            outcomes[name] = "ok"
        except (InvalidStateError, ConflictError):
            outcomes[name] = "409"
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=("cancel", job_cancel)),
               threading.Thread(target=run, args=("start", job_start))]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


@pytest.mark.django_db(transaction=True)
def test_concurrent_cancel_and_start_end_in_one_consistent_state(org):
    """Two connections race on one draft: the row lock serialises them, and the loser sees the
    winner's state. Either cancel wins (start then finds a cancelled job: 409), or start wins
    and cancel then cancels the queued job. The timeline always matches the final status."""
    for _ in range(5):
        job = JobFactory(organization=org, status=JobStatus.DRAFT, source_type="url")
        outcomes = race(job)
        job.refresh_from_db()
        events = list(JobEvent.objects.filter(job=job).values_list("to_status", flat=True))
        assert job.status == JobStatus.CANCELLED and outcomes["cancel"] == "ok"
        if outcomes["start"] == "ok":
            assert events == ["draft", "queued", "cancelled"]
        else:
            assert outcomes["start"] == "409" and events == ["draft", "cancelled"]
