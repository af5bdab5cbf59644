import pytest

from jobs.models import Job
from pipelines.models import Pipeline, PipelineVersion
from tests.jobs.factories import JobFactory

PIPELINES = "/api/v1/pipelines"
CONFIG = {"stages": [{"name": "detect"}, {"name": "extract_text", "params": {"max_pages": 50}}]}


def create(client, name="contracts", config=CONFIG, expect=201):
    response = client.post(PIPELINES, {"name": name, "description": "d", "config": config}, format="json")
    assert response.status_code == expect, response.content
    return response.json()


def test_it_creates_lists_and_reads_pipelines(as_owner, as_viewer, org):
    body = create(as_owner)
    assert body["version"] == 1 and body["is_active"] is True and body["config"] == CONFIG
    assert PipelineVersion.objects.get(pipeline_id=body["id"]).config == CONFIG
    assert [p["name"] for p in as_viewer.get(PIPELINES).json()["items"]] == ["contracts"]
    assert as_viewer.get(f"{PIPELINES}/{body['id']}").json()["name"] == "contracts"


def test_a_new_config_makes_a_new_version_and_jobs_keep_theirs(as_owner, as_member, org):
    body = create(as_owner)
    job_id = as_member.post("/api/v1/jobs", {"source_type": "text", "text": "hi", "pipeline_id": body["id"]},
                            format="json").json()["id"]  # fmt: skip
    new_config = {"stages": [{"name": "detect"}]}
    updated = as_owner.patch(f"{PIPELINES}/{body['id']}", {"config": new_config}, format="json").json()
    assert updated["version"] == 2 and updated["config"] == new_config
    assert as_owner.patch(f"{PIPELINES}/{body['id']}", {"description": "x"}, format="json").json()["version"] == 2
    versions = as_owner.get(f"{PIPELINES}/{body['id']}/versions").json()["items"]
    assert [(v["version"], v["config"]) for v in versions] == [(2, new_config), (1, CONFIG)]
    assert Job.objects.get(pk=job_id).config == CONFIG


@pytest.mark.parametrize(
    "config, path",
    [
        ({"stages": [{"name": "teleport"}]}, "config.stages[0].name"),
        ({"stages": [{"name": "detect"}, {"name": "extract_text", "params": {"max_pages": -1}}]},
         "config.stages[1].params.max_pages"),
        ({"stages": []}, "config.stages"),
        ("not an object", "config"),
    ],
)  # fmt: skip
def test_bad_configs_are_400_naming_the_path(as_owner, config, path):
    response = as_owner.post(PIPELINES, {"name": "x", "config": config}, format="json")
    assert response.status_code == 400
    assert path in response.json()["error"]["details"]
    assert not Pipeline.objects.filter(name="x").exists()
    dry = as_owner.post(f"{PIPELINES}/validate", {"config": config}, format="json")
    assert dry.status_code == 400 and path in dry.json()["error"]["details"]


def test_validate_returns_the_normalized_config(as_viewer):
    body = as_viewer.post(f"{PIPELINES}/validate", {"config": CONFIG}, format="json").json()
    assert body["valid"] is True
    assert body["normalized"]["stages"][1]["params"] == {"max_pages": 50, "max_chars": 50_000_000,
                                                          "max_decompressed_mb": 512}  # fmt: skip


def test_stages_lists_every_stage_with_its_schema(as_viewer):
    stages = {s["name"]: s for s in as_viewer.get(f"{PIPELINES}/stages").json()}
    assert {"detect", "extract_text", "language", "quality", "checksum"} <= set(stages)
    assert stages["extract_text"]["params_schema"]["properties"]["max_pages"]["default"] == 2000
    assert stages["language"]["needs"] == ["extract_text"]


def test_names_are_unique_per_organization(as_owner, as_outsider):
    create(as_owner)
    assert create(as_owner, expect=409)
    create(as_outsider)  # another organization may use the name


def test_delete_deactivates_a_pipeline_jobs_used(as_owner, org):
    used, unused = create(as_owner, "used"), create(as_owner, "unused")
    pipeline = Pipeline.objects.get(pk=used["id"])
    JobFactory(organization=org, pipeline=pipeline, pipeline_version=pipeline.versions.get())
    assert as_owner.delete(f"{PIPELINES}/{used['id']}").status_code == 204
    assert as_owner.delete(f"{PIPELINES}/{unused['id']}").status_code == 204
    assert Pipeline.objects.get(pk=used["id"]).is_active is False
    assert not Pipeline.objects.filter(pk=unused["id"]).exists()
    response = as_owner.post("/api/v1/jobs", {"source_type": "text", "text": "x", "pipeline_id": used["id"]},
                             format="json")  # fmt: skip
    assert response.status_code == 404  # no active pipeline has this id


def test_jobs_without_a_pipeline_run_the_default_one(as_member, as_owner, org):
    job = as_member.post("/api/v1/jobs", {"source_type": "text", "text": "hello"}, format="json").json()
    assert job["pipeline"]["name"] == "default" and job["pipeline"]["version"] == 1
    default = Pipeline.objects.get(organization=org, name="default")
    assert [s["name"] for s in default.config["stages"]] == ["detect", "extract_text", "ocr", "language", "quality"]
    assert as_owner.delete(f"{PIPELINES}/{default.id}").status_code == 409
    assert as_owner.patch(f"{PIPELINES}/{default.id}", {"is_active": False}, format="json").status_code == 409


def test_permissions_and_isolation(as_viewer, as_member, as_owner, as_outsider):
    body = create(as_owner)
    assert as_viewer.post(PIPELINES, {"name": "x", "config": CONFIG}, format="json").status_code == 403
    assert as_member.patch(f"{PIPELINES}/{body['id']}", {"description": "x"}, format="json").status_code == 403
    assert as_outsider.get(f"{PIPELINES}/{body['id']}").status_code == 404
    assert as_outsider.delete(f"{PIPELINES}/{body['id']}").status_code == 404
