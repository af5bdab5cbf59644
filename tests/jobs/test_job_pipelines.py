import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from jobs.models import Job, JobStatus
from pipelines.models import Pipeline, PipelineVersion
from tests.factories import OrganizationFactory
from tests.jobs.factories import JobFactory

JOBS = "/api/v1/jobs"
CONFIG = {"stages": [{"name": "detect"}, {"name": "extract_text"}]}


def make_pipeline(organization, name="ocr", config=CONFIG, active=True) -> Pipeline:
    pipeline = Pipeline.objects.create(organization=organization, name=name, config=config, is_active=active)
    PipelineVersion.objects.create(pipeline=pipeline, version=1, config=config)
    return pipeline


def create(client, **data):
    return client.post(JOBS, {"source_type": "url", "source_uri": "https://example.com/a.pdf", **data}, format="json")


def test_a_job_runs_a_snapshot_of_the_pipelines_current_version(as_member, org):
    pipeline = make_pipeline(org)
    body = create(as_member, pipeline_id=str(pipeline.id)).json()
    assert body["pipeline"] == {"id": str(pipeline.id), "name": "ocr", "version": 1}
    job = Job.objects.get(pk=body["id"])
    assert job.config == CONFIG and job.pipeline_version.version == 1
    # a new version of the pipeline does not touch the job already created
    PipelineVersion.objects.create(pipeline=pipeline, version=2, config={"stages": []})
    Pipeline.objects.filter(pk=pipeline.pk).update(version=2, config={"stages": []})
    job.refresh_from_db()
    assert job.config == CONFIG and as_member.get(f"{JOBS}/{job.id}").json()["pipeline"]["version"] == 1
    assert create(as_member, pipeline_id=str(pipeline.id)).json()["pipeline"]["version"] == 2


@pytest.mark.parametrize("whose", ["other organization", "inactive", "unknown"])
def test_a_pipeline_must_be_an_active_one_of_the_organization(as_member, org, whose):
    pipeline = {
        "other organization": lambda: make_pipeline(OrganizationFactory()),
        "inactive": lambda: make_pipeline(org, active=False),
        "unknown": lambda: Pipeline(id="00000000-0000-0000-0000-000000000000"),
    }[whose]()
    response = create(as_member, pipeline_id=str(pipeline.id))
    assert response.status_code == 404 and "pipeline_id" in response.json()["error"]["details"]
    assert not Job.objects.exists()


def test_jobs_filter_by_pipeline_in_a_fixed_number_of_queries(
    as_viewer, org, django_assert_num_queries, without_request_audit
):
    pipeline = make_pipeline(org)
    version = pipeline.versions.get()
    with_pipeline = JobFactory.create_batch(3, organization=org, pipeline=pipeline, pipeline_version=version)
    JobFactory.create_batch(2, organization=org)
    as_viewer.get(JOBS)
    with django_assert_num_queries(2):
        body = as_viewer.get(JOBS, {"pipeline": str(pipeline.id)}).json()
    assert sorted(i["id"] for i in body["items"]) == sorted(str(j.id) for j in with_pipeline)
    assert all(i["pipeline"]["name"] == "ocr" for i in body["items"])


def test_uploads_and_retries_take_a_pipeline(as_member, org):
    pipeline = make_pipeline(org)
    response = as_member.post("/api/v1/upload", {"files": [SimpleUploadedFile("a.txt", b"hello")],
                                                 "pipeline_id": str(pipeline.id)}, format="multipart")  # fmt: skip
    assert response.json()["jobs"][0]["pipeline"]["id"] == str(pipeline.id)
    failed = JobFactory(organization=org, status=JobStatus.FAILED)
    retry = as_member.post(f"{JOBS}/{failed.id}/retry", {"updated_config": {"pipeline_id": str(pipeline.id)}},
                           format="json").json()  # fmt: skip
    assert retry["pipeline"]["id"] == str(pipeline.id) and Job.objects.get(pk=retry["id"]).config == CONFIG
    other = make_pipeline(OrganizationFactory(), name="theirs")
    refused = as_member.post(f"{JOBS}/{failed.id}/retry", {"updated_config": {"pipeline_id": str(other.id)}},
                             format="json")  # fmt: skip
    assert refused.status_code == 404 and "updated_config.pipeline_id" in refused.json()["error"]["details"]
