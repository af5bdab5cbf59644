import pytest

from pipelines.validation import DEFAULT_CONFIG, normalized, validate_config


def test_the_default_config_is_valid_and_normalizes_with_defaults():
    assert validate_config(DEFAULT_CONFIG) == {}
    stages = normalized(DEFAULT_CONFIG)["stages"]
    assert [s["name"] for s in stages] == ["detect", "extract_text", "ocr", "language", "quality"]
    assert stages[1]["params"]["max_pages"] == 2000 and stages[1]["retry"] == {
        "attempts": 3,
        "backoff_seconds": 1,
        "crashes": False,
    }
    assert stages[1]["timeout_seconds"] == 300


@pytest.mark.parametrize(
    "config, path",
    [
        ([], "config"),
        ({"stages": []}, "config.stages"),
        ({"stages": [{"name": "teleport"}]}, "config.stages[0].name"),
        ({"stages": [{"name": "detect"}, {"name": "extract_text", "params": {"max_pages": 0}}]},
         "config.stages[1].params.max_pages"),
        ({"stages": [{"name": "detect"}, {"name": "extract_text", "params": {"colour": "red"}}]},
         "config.stages[1].params"),
        ({"stages": [{"name": "detect", "retry": {"attempts": 99}}]}, "config.stages[0].retry.attempts"),
        ({"stages": [{"name": "detect", "when": "always"}]}, "config.stages[0].when"),
        ({"stages": [{"name": "detect"}], "extra": 1}, "config.extra"),
    ],
)  # fmt: skip
def test_errors_name_the_path_of_the_bad_field(config, path):
    assert path in validate_config(config)


def test_order_rules_are_resolved_not_refused():
    config = {"stages": [{"name": "quality"}, {"name": "fetch", "params": {"max_bytes": 10}}, {"name": "language"}]}
    assert validate_config(config) == {}
    stages = normalized(config)["stages"]
    assert [s["name"] for s in stages] == ["fetch", "detect", "extract_text", "quality", "language"]
    assert stages[0]["params"] == {"max_bytes": 10}


@pytest.mark.parametrize("params", [{"max_pages": 1.0}, {"max_pages": True}, {"max_chars": 10.5}])
def test_integer_parameters_take_integers_only(params):
    config = {"stages": [{"name": "detect"}, {"name": "extract_text", "params": params}]}
    assert set(validate_config(config)) == {f"config.stages[1].params.{next(iter(params))}"}


def test_default_pipelines_on_the_old_default_get_a_version_with_ocr(db, org, other_org):
    import importlib

    from django.apps import apps

    from pipelines.models import Pipeline, PipelineVersion

    migration = importlib.import_module("pipelines.migrations.0002_default_pipelines_read_scans")
    old = Pipeline.objects.create(organization=org, name="default", config=migration.BEFORE)
    PipelineVersion.objects.create(pipeline=old, version=1, config=migration.BEFORE)
    edited = {"stages": [{"name": "detect"}, {"name": "extract_text"}]}
    mine = Pipeline.objects.create(organization=other_org, name="default", config=edited)
    migration.add_ocr(apps, None)
    old.refresh_from_db()
    assert (old.version, old.config) == (2, migration.AFTER) == (2, DEFAULT_CONFIG)
    assert list(old.versions.order_by("version").values_list("version", flat=True)) == [1, 2]
    mine.refresh_from_db()
    assert (mine.version, mine.config) == (1, edited)  # edited by its organization: left alone
