"""Staff create pipelines and edit their configs in the admin: validated as the API validates them,
saved through the same services (a new version, ``pipeline.*`` webhooks) and audited."""

import json

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from audit.models import AuditLog
from pipeline_project.lib.errors import ConflictError
from pipelines.models import Pipeline, PipelineVersion
from pipelines.services import DEFAULT_NAME, pipeline_create, pipeline_update_check
from tests.factories import UserFactory
from webhooks import signing
from webhooks.models import WebhookDelivery, WebhookSubscription

PIPELINES = "/admin/pipelines/pipeline/"
CONFIG = {"stages": [{"name": "detect"}, {"name": "extract_text", "params": {"max_pages": 50}}]}


@pytest.fixture
def staff_client(client, db):
    client.force_login(UserFactory(is_staff=True, is_superuser=True, username="staffer"))
    return client


@pytest.fixture
def pipeline(org):
    return pipeline_create(organization=org, name="contracts", config=CONFIG, description="d")


@pytest.fixture
def subscribed(org):
    """A subscription to pipeline events: what the admin's saves announce lands in its deliveries."""
    return WebhookSubscription.objects.create(organization=org, url="https://hooks.example.com/in",
                                              events=["pipeline.created", "pipeline.updated"],
                                              secret=signing.new_secret())  # fmt: skip


def form_data(pipeline=None, **changes):
    data = {"name": "contracts", "description": "d", "config": json.dumps(CONFIG), "is_active": "on",
            "versions-TOTAL_FORMS": "0", "versions-INITIAL_FORMS": "0"}  # fmt: skip
    if pipeline is not None:
        versions = pipeline.versions.count()
        data.update({"versions-TOTAL_FORMS": str(versions), "versions-INITIAL_FORMS": str(versions)})
        for index, version in enumerate(pipeline.versions.order_by("-version")):
            data[f"versions-{index}-id"] = str(version.pk)
            data[f"versions-{index}-pipeline"] = str(pipeline.pk)
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def change(client, pipeline, **changes):
    return client.post(f"{PIPELINES}{pipeline.pk}/change/", form_data(pipeline, **changes))


def errors_of(response) -> str:
    assert response.status_code == 200, response.status_code  # the form again, with its errors
    return response.content.decode()


def test_the_form_shows_the_config_as_pretty_json_with_its_history(staff_client, pipeline):
    text = staff_client.get(f"{PIPELINES}{pipeline.pk}/change/").content.decode()
    assert "&quot;stages&quot;: [\n" in text  # indented JSON in the textarea
    assert "version history" in text.lower() and "As jobs run it" in text and "Stage reference" in text
    assert "max_decompressed_mb" in text  # the normalized config, defaults filled in


def test_a_new_config_makes_a_new_version_announced_and_audited(staff_client, pipeline, subscribed):
    new = {"stages": [{"name": "detect"}, {"name": "extract_text", "params": {"max_chars": 1000}}]}
    response = change(staff_client, pipeline, config=json.dumps(new, indent=4))
    assert response.status_code == 302, response.content.decode()[:2000]
    pipeline.refresh_from_db()
    assert pipeline.version == 2 and pipeline.config == new
    assert [(v.version, v.config) for v in pipeline.versions.order_by("version")] == [(1, CONFIG), (2, new)]
    assert pipeline.versions.get(version=2).created_by.username == "staffer"
    record = AuditLog.objects.get(action="admin.pipelines.update")
    assert (record.actor_kind, record.resource_id, record.organization_id) == ("staff", str(pipeline.pk),
                                                                              pipeline.organization_id)  # fmt: skip
    assert record.request_details == {"changed": ["config"], "version": 2, "previous_version": 1}
    delivery = WebhookDelivery.objects.get(event_type="pipeline.updated")
    assert delivery.payload["data"]["version"] == 2 and delivery.payload["data"]["config"] == new
    history = staff_client.get(f"{PIPELINES}{pipeline.pk}/change/").content.decode()
    assert "max_chars" in history and "max_pages" in history  # both versions listed


def test_the_page_lists_the_latest_versions_only_and_saves_with_them(staff_client, pipeline):
    from pipelines.services import pipeline_update

    for pages in range(2, 26):
        pipeline = pipeline_update(pipeline=pipeline, changes={"config": {"stages": [
            {"name": "extract_text", "params": {"max_pages": pages}}]}})  # fmt: skip
    text = staff_client.get(f"{PIPELINES}{pipeline.pk}/change/").content.decode()
    assert 'name="versions-TOTAL_FORMS" value="20"' in text
    assert "&quot;max_pages&quot;: 25" in text and "&quot;max_pages&quot;: 6" in text
    assert "&quot;max_pages&quot;: 5\n" not in text
    data = form_data(description="shorter history on the page")
    data.update({"versions-TOTAL_FORMS": "20", "versions-INITIAL_FORMS": "20"})
    for index, version in enumerate(pipeline.versions.order_by("-version")[:20]):
        data.update({f"versions-{index}-id": str(version.pk), f"versions-{index}-pipeline": str(pipeline.pk)})
    data["config"] = json.dumps(pipeline.config)
    assert staff_client.post(f"{PIPELINES}{pipeline.pk}/change/", data).status_code == 302
    assert Pipeline.objects.get(pk=pipeline.pk).description == "shorter history on the page"


def test_other_changes_keep_the_version_and_an_unchanged_save_does_nothing(staff_client, pipeline, subscribed):
    assert change(staff_client, pipeline, config=json.dumps(CONFIG, indent=8)).status_code == 302  # same config
    assert not AuditLog.objects.filter(action="admin.pipelines.update").exists()
    assert not WebhookDelivery.objects.exists()
    assert change(staff_client, pipeline, description="new words", is_active=None).status_code == 302
    pipeline.refresh_from_db()
    assert (pipeline.version, pipeline.description, pipeline.is_active) == (1, "new words", False)
    assert AuditLog.objects.get(action="admin.pipelines.update").request_details["changed"] == [
        "description", "is_active"]  # fmt: skip
    assert WebhookDelivery.objects.get().event_type == "pipeline.updated"


@pytest.mark.parametrize(
    "config, message",
    [
        ({"stages": [{"name": "detect"}, {"name": "extract_text", "params": {"max_chars": 0}}]},
         "stages[1].params.max_chars: 0 is less than the minimum of 1"),
        ({"stages": [{"name": "teleport"}]}, "stages[0].name: Unknown stage &#x27;teleport&#x27;"),
        ({"stages": [{"name": "detect", "params": {"bogus": 1}}]}, "stages[0].params: Unknown parameter: bogus"),
        ({"stages": []}, "stages: Must be a list of 1 to 50 stages."),
        ({"stages": [{"name": "detect"}], "extra": True}, "extra: Unknown field."),
        ([1, 2], "Must be an object with a list of stages."),
    ],
)  # fmt: skip
def test_a_bad_config_is_refused_naming_the_path_as_the_api_does(staff_client, pipeline, config, message):
    text = errors_of(change(staff_client, pipeline, config=json.dumps(config)))
    assert message in text and "errornote" in text
    pipeline.refresh_from_db()
    assert pipeline.version == 1 and PipelineVersion.objects.count() == 1
    assert not AuditLog.objects.filter(action__startswith="admin.pipelines").exists()


def test_text_that_is_not_json_is_refused_and_kept_for_fixing(staff_client, pipeline):
    text = errors_of(change(staff_client, pipeline, config='{"stages": [{"name": "detect"},]}'))
    assert "Enter valid JSON" in text and "{&quot;stages&quot;: [{&quot;name&quot;: &quot;detect&quot;},]}" in text
    assert "Enter valid JSON" in errors_of(change(staff_client, pipeline, config='{"stages": NaN}'))


def test_names_are_checked_as_the_api_checks_them(staff_client, pipeline, org):
    pipeline_create(organization=org, name="taken", config=CONFIG)
    assert "Already used in your organization." in errors_of(change(staff_client, pipeline, name="taken"))
    default = pipeline_create(organization=org, name=DEFAULT_NAME, config=CONFIG)
    assert "The default pipeline cannot be renamed." in errors_of(change(staff_client, default, name="other"))
    text = errors_of(change(staff_client, default, name=DEFAULT_NAME, is_active=None))
    assert "The default pipeline cannot be deactivated." in text
    default.refresh_from_db()
    assert default.is_active and default.name == DEFAULT_NAME


def test_staff_create_a_pipeline_through_the_service(staff_client, org, subscribed):
    data = form_data(organization=str(org.pk), name="invoices")
    response = staff_client.post(f"{PIPELINES}add/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    pipeline = Pipeline.objects.get(name="invoices")
    assert (pipeline.version, pipeline.config, pipeline.created_by.username) == (1, CONFIG, "staffer")
    assert pipeline.versions.get().config == CONFIG
    assert AuditLog.objects.get(action="admin.pipelines.create").resource_id == str(pipeline.pk)
    assert WebhookDelivery.objects.get().event_type == "pipeline.created"
    again = errors_of(staff_client.post(f"{PIPELINES}add/", data))
    assert "already exists" in again or "Already used" in again
    bad = staff_client.post(f"{PIPELINES}add/", form_data(organization=str(org.pk), name="x",
                                                          config='{"stages": [{"name": "nope"}]}'))  # fmt: skip
    assert "stages[0].name: Unknown stage" in errors_of(bad)
    assert not Pipeline.objects.filter(name="x").exists()


def test_the_pages_render_and_pipelines_are_never_deleted_here(staff_client, pipeline):
    for url in (PIPELINES, f"{PIPELINES}add/", f"{PIPELINES}{pipeline.pk}/change/", f"{PIPELINES}?is_active__exact=1"):
        assert staff_client.get(url).status_code == 200, url
    assert "detect → extract_text" in staff_client.get(PIPELINES).content.decode()
    assert staff_client.get(f"{PIPELINES}{pipeline.pk}/delete/").status_code == 403
    assert "delete_selected" not in staff_client.get(PIPELINES).content.decode()


def test_saving_needs_a_csrf_token(pipeline):
    client = Client(enforce_csrf_checks=True)
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    assert change(client, pipeline, config=json.dumps({"stages": [{"name": "detect"}]})).status_code == 403
    pipeline.refresh_from_db()
    assert pipeline.version == 1


def test_staff_who_may_only_view_pipelines_cannot_change_them(client, pipeline):
    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.set(Permission.objects.filter(codename="view_pipeline"))
    client.force_login(viewer)
    page = client.get(f"{PIPELINES}{pipeline.pk}/change/").content.decode()
    assert 'name="_save"' not in page and "contracts" in page
    assert change(client, pipeline, config=json.dumps({"stages": [{"name": "detect"}]})).status_code == 403
    assert client.get(f"{PIPELINES}add/").status_code == 403
    pipeline.refresh_from_db()
    assert pipeline.version == 1


def test_people_who_are_not_staff_never_reach_it(client, pipeline, owner):
    client.force_login(owner)
    assert client.get(PIPELINES).status_code == 302
    assert change(client, pipeline, config=json.dumps({"stages": [{"name": "detect"}]})).status_code == 302
    pipeline.refresh_from_db()
    assert pipeline.version == 1


def test_pipeline_update_check_raises_what_pipeline_update_would(org, pipeline):
    pipeline_create(organization=org, name="taken", config=CONFIG)
    default = pipeline_create(organization=org, name=DEFAULT_NAME, config=CONFIG)
    pipeline_update_check(pipeline=pipeline, changes={"name": "free", "is_active": False, "config": CONFIG})
    for target, changes, code in [(pipeline, {"name": "taken"}, "name_taken"),
                                  (default, {"name": "other"}, "default_pipeline"),
                                  (default, {"is_active": False}, "default_pipeline")]:  # fmt: skip
        with pytest.raises(ConflictError) as checked:
            pipeline_update_check(pipeline=target, changes=changes)
        assert checked.value.code == code
    assert Pipeline.objects.get(pk=pipeline.pk).name == "contracts"  # it only checks
