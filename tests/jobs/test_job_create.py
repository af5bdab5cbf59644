import pytest

from jobs.models import Job, JobEvent, JobFile, JobStatus
from tests.jobs.factories import JobFactory

JOBS = "/api/v1/jobs"


def create(client, expect=201, headers=None, **data):
    response = client.post(JOBS, {"source_type": "url", "source_uri": "https://example.com/a.pdf", **data},
                           format="json", **(headers or {}))  # fmt: skip
    assert response.status_code == expect, response.content
    return response.json()


def test_it_creates_a_queued_url_job_and_enqueues_it_after_commit(
    as_member, member, org, rq_queue, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        body = create(as_member, priority="high", metadata={"customer": "acme"}, mode="fast")
    assert len(callbacks) == 2  # the enqueue, and the jobs-created counter (/metrics): both after commit
    job = Job.objects.get(pk=body["id"])
    assert (job.organization, job.created_by, job.status, job.priority) == (org, member, "queued", 1)
    assert body["status"] == "queued" and body["priority"] == "high" and body["mode"] == "fast"
    assert body["metadata"] == {"customer": "acme"} and body["progress"]["percent"] == 0
    assert body["links"]["self"].endswith(f"/api/v1/jobs/{job.id}") and body["error"] is None
    assert rq_queue("high") == [str(job.id)]  # RQ job id = our job id, on the queue of its priority
    assert rq_queue("default") == []
    event = JobEvent.objects.get(job=job)
    assert (event.from_status, event.to_status, event.actor) == ("", "queued", f"user:{member.id}")


def test_it_enqueues_nothing_before_commit(as_member, rq_queue):
    create(as_member)  # the test transaction never commits
    assert rq_queue("default") == []


def test_it_creates_a_draft_without_enqueuing(as_member, rq_queue, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        body = create(as_member, start=False)
    assert body["status"] == "draft" and rq_queue("default") == []


def test_it_stores_text_sources_as_a_file(as_member, settings):
    body = create(as_member, source_type="text", source_uri="", text="Hello, wörld.")
    job_file = JobFile.objects.get(job_id=body["id"])
    assert body["file_name"] == "input.txt" and body["file_size"] == len("Hello, wörld.".encode())
    assert (settings.MEDIA_ROOT / job_file.storage_name).read_text() == "Hello, wörld."
    assert job_file.storage_name.startswith(f"uploads/{job_file.job.organization_id}/{body['id']}/")


def test_an_api_key_is_recorded_as_creator(owner_key, org):
    from tests.conftest import key_client

    body = create(key_client(owner_key.raw_key))
    job = Job.objects.get(pk=body["id"])
    assert job.created_by_key == owner_key and job.created_by == owner_key.created_by
    assert JobEvent.objects.get(job=job).actor == f"key:{owner_key.id}"


@pytest.mark.parametrize(
    "data, field",
    [
        ({"source_type": "ftp"}, "source_type"),
        ({"source_uri": ""}, "source_uri"),
        ({"source_uri": "ftp://example.com/a.pdf"}, "source_uri"),
        ({"source_uri": "http://127.0.0.1/admin"}, "source_uri"),
        ({"source_uri": "http://2130706433/"}, "source_uri"),
        ({"source_uri": "http://0177.0.0.1/"}, "source_uri"),
        ({"source_uri": "http://169.254.169.254/latest/meta-data"}, "source_uri"),
        ({"source_uri": "http://10.0.0.5/x"}, "source_uri"),
        ({"source_uri": "http://[::1]/x"}, "source_uri"),
        ({"source_uri": "http://[::ffff:127.0.0.1]/x"}, "source_uri"),
        ({"source_uri": "http://100.64.0.1/x"}, "source_uri"),
        ({"source_uri": "http://localhost:8000/x"}, "source_uri"),
        ({"source_uri": "http://user:pw@example.com/x"}, "source_uri"),
        ({"webhook_url": "http://192.168.1.10/hook"}, "webhook_url"),
        ({"webhook_url": "not a url"}, "webhook_url"),
        ({"priority": "urgent"}, "priority"),
        ({"mode": "Not A Mode!"}, "mode"),
        ({"metadata": ["not", "an", "object"]}, "metadata"),
        ({"metadata": {"big": "x" * 17000}}, "metadata"),
        ({"file_size": -1}, "file_size"),
        ({"source_type": "text", "source_uri": ""}, "text"),
        ({"source_type": "url", "source_uri": 5}, "source_uri"),
    ],
)
def test_it_refuses_bad_input_with_400_and_creates_nothing(as_member, data, field):
    response = as_member.post(JOBS, {"source_type": "url", "source_uri": "https://example.com/a.pdf", **data},
                              format="json")  # fmt: skip
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["details"]
    assert not Job.objects.exists()


def test_idempotency_key_returns_the_same_job_for_the_same_request(as_member):
    headers = {"HTTP_IDEMPOTENCY_KEY": "order-42"}
    first = create(as_member, headers=headers)
    again = create(as_member, expect=200, headers=headers)
    assert again["id"] == first["id"] and Job.objects.count() == 1


def test_idempotency_key_with_another_request_is_a_409(as_member):
    create(as_member, headers={"HTTP_IDEMPOTENCY_KEY": "order-42"})
    response = as_member.post(JOBS, {"source_type": "url", "source_uri": "https://example.com/OTHER.pdf"},
                              format="json", HTTP_IDEMPOTENCY_KEY="order-42")  # fmt: skip
    assert response.status_code == 409 and response.json()["error"]["code"] == "idempotency_key_reused"


def test_idempotency_keys_expire_after_24_hours(as_member):
    from datetime import timedelta

    from django.utils import timezone

    first = create(as_member, headers={"HTTP_IDEMPOTENCY_KEY": "k"})
    Job.objects.filter(pk=first["id"]).update(created_at=timezone.now() - timedelta(hours=25))
    assert create(as_member, headers={"HTTP_IDEMPOTENCY_KEY": "k"})["id"] != first["id"]


def test_idempotency_keys_are_per_organization(as_member, as_outsider):
    a = create(as_member, headers={"HTTP_IDEMPOTENCY_KEY": "k"})
    b = create(as_outsider, headers={"HTTP_IDEMPOTENCY_KEY": "k"})
    assert a["id"] != b["id"]


def test_viewers_cannot_create_jobs(as_viewer):
    response = as_viewer.post(JOBS, {"source_type": "url", "source_uri": "https://e.com/a"}, format="json")
    assert response.status_code == 403


def test_detail_shows_files_and_links_and_hides_other_organizations(as_member, as_outsider, org):
    body = create(as_member, source_type="text", source_uri="", text="hi")
    detail = as_member.get(f"{JOBS}/{body['id']}").json()
    assert detail["files"][0]["name"] == "input.txt" and detail["files"][0]["status"] == "pending"
    assert detail["retries"] == [] and detail["max_attempts"] == 3
    assert as_outsider.get(f"{JOBS}/{body['id']}").status_code == 404
    assert as_member.get(f"{JOBS}/not-a-uuid").status_code == 404
    other = JobFactory()
    assert as_member.get(f"{JOBS}/{other.id}").json()["error"]["code"] == "not_found"
    assert Job.objects.get(pk=body["id"]).status == JobStatus.QUEUED
