import pytest

from jobs.models import JobFile, JobStatus
from tests.factories import UserFactory
from tests.jobs.factories import JobFactory


@pytest.fixture
def staff_client(client, db):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def test_staff_can_browse_and_search_jobs(staff_client, org):
    job = JobFactory(organization=org, status=JobStatus.FAILED, file_name="quarterly.pdf")
    JobFile.objects.create(job=job, storage_name="x", original_name="quarterly.pdf", size=1,
                           mime_type="application/pdf", sha256="0" * 64)  # fmt: skip
    listing = staff_client.get("/admin/jobs/job/?status__exact=failed&q=quarterly").content.decode()
    assert str(job.id) in listing
    detail = staff_client.get(f"/admin/jobs/job/{job.id}/change/")
    assert detail.status_code == 200 and "quarterly.pdf" in detail.content.decode()
    assert staff_client.post(f"/admin/jobs/job/{job.id}/change/", {"status": "queued"}).status_code == 403
    assert staff_client.get("/admin/jobs/job/add/").status_code == 403
