import pytest

from jobs.models import Job, JobFile, JobStatus
from tests.jobs.factories import JobFactory

JOBS = "/api/v1/jobs"


@pytest.fixture
def failed_job(org):
    job = JobFactory(organization=org, status=JobStatus.FAILED, metadata={"a": 1}, mode="fast",
                     error={"code": "fetch_failed", "message": "404", "stage": "fetch"})  # fmt: skip
    JobFile.objects.create(job=job, storage_name="uploads/x/y/z/a.pdf", original_name="a.pdf", size=3,
                           mime_type="application/pdf", sha256="0" * 64)  # fmt: skip
    return job


def test_retry_creates_a_new_linked_queued_job(as_member, member, failed_job, rq_queue,
                                               django_capture_on_commit_callbacks):  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        response = as_member.post(f"{JOBS}/{failed_job.id}/retry", {}, format="json")
    assert response.status_code == 201
    body = response.json()
    retry = Job.objects.get(pk=body["id"])
    assert retry.pk != failed_job.pk and retry.status == JobStatus.QUEUED and retry.created_by == member
    assert body["retried_from"] == str(failed_job.id) and body["error"] is None
    assert (retry.source_uri, retry.mode, retry.metadata) == (failed_job.source_uri, "fast", {"a": 1})
    assert list(retry.files.values_list("storage_name", "sha256")) == [("uploads/x/y/z/a.pdf", "0" * 64)]
    assert as_member.get(f"{JOBS}/{failed_job.id}").json()["retries"] == [str(retry.id)]
    assert rq_queue("default") == [str(retry.id)]
    assert Job.objects.get(pk=failed_job.pk).status == JobStatus.FAILED  # the original is untouched


def test_retry_applies_updated_config(as_member, failed_job, rq_queue, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        body = as_member.post(f"{JOBS}/{failed_job.id}/retry",
                              {"updated_config": {"priority": "high", "metadata": {"b": 2}}},
                              format="json").json()  # fmt: skip
    assert body["priority"] == "high" and body["metadata"] == {"b": 2} and body["mode"] == "fast"
    assert rq_queue("high") == [body["id"]]


@pytest.mark.parametrize("status", [JobStatus.QUEUED, JobStatus.PROCESSING, JobStatus.COMPLETED, JobStatus.DRAFT])
def test_only_failed_or_cancelled_jobs_can_be_retried(as_member, org, status):
    job = JobFactory(organization=org, status=status)
    response = as_member.post(f"{JOBS}/{job.id}/retry", {}, format="json")
    assert response.status_code == 409 and response.json()["error"]["code"] == "invalid_state"
    assert Job.objects.count() == 1


def test_retry_validates_overrides_and_permissions(as_member, as_viewer, as_outsider, failed_job):
    bad = as_member.post(f"{JOBS}/{failed_job.id}/retry", {"updated_config": {"priority": "asap"}}, format="json")
    assert bad.status_code == 400 and "updated_config.priority" in bad.json()["error"]["details"]
    assert as_viewer.post(f"{JOBS}/{failed_job.id}/retry", {}, format="json").status_code == 403
    assert as_outsider.post(f"{JOBS}/{failed_job.id}/retry", {}, format="json").status_code == 404


def test_start_queues_a_draft(as_member, org, rq_queue, django_capture_on_commit_callbacks):
    job = JobFactory(organization=org, status=JobStatus.DRAFT)
    with django_capture_on_commit_callbacks(execute=True):
        response = as_member.post(f"{JOBS}/{job.id}/start")
    assert response.status_code == 200 and response.json()["status"] == "queued"
    assert rq_queue("default") == [str(job.id)]


def test_start_needs_files_for_upload_jobs(as_member, org):
    job = JobFactory(organization=org, status=JobStatus.DRAFT, source_type="upload", source_uri="")
    response = as_member.post(f"{JOBS}/{job.id}/start")
    assert response.status_code == 409 and response.json()["error"]["code"] == "no_files"


def test_start_refuses_jobs_already_started(as_member, org):
    job = JobFactory(organization=org, status=JobStatus.QUEUED)
    assert as_member.post(f"{JOBS}/{job.id}/start").json()["error"]["code"] == "invalid_state"


def test_events_are_the_timeline_with_cursors(as_member, org):
    job = JobFactory(organization=org, status=JobStatus.DRAFT)
    as_member.post(f"{JOBS}/{job.id}/start")
    as_member.delete(f"{JOBS}/{job.id}")
    first = as_member.get(f"{JOBS}/{job.id}/events?page_size=2").json()
    assert [e["to_status"] for e in first["items"]] == ["draft", "queued"]
    rest = as_member.get(f"{JOBS}/{job.id}/events", {"cursor": first["next_cursor"]}).json()
    assert [(e["from_status"], e["to_status"]) for e in rest["items"]] == [("queued", "cancelled")]
    assert rest["next_cursor"] is None


def test_events_of_other_organizations_are_404(as_outsider, org):
    job = JobFactory(organization=org)
    assert as_outsider.get(f"{JOBS}/{job.id}/events").status_code == 404
