"""Default pipelines still on the configuration they were created with get a new version that
adds the ocr stage (the new default), so that scans and images are read; a default pipeline its
organization edited is left as it is. Jobs keep the version they ran with."""

from django.db import migrations

BEFORE = {"stages": [{"name": "detect"}, {"name": "extract_text"}, {"name": "language"}, {"name": "quality"}]}
AFTER = {"stages": [{"name": "detect"}, {"name": "extract_text"}, {"name": "ocr"}, {"name": "language"},
                    {"name": "quality"}]}  # fmt: skip


def add_ocr(apps, schema_editor):
    Pipeline, PipelineVersion = apps.get_model("pipelines", "Pipeline"), apps.get_model("pipelines", "PipelineVersion")
    for pipeline in Pipeline.objects.filter(name="default").iterator():
        if pipeline.config != BEFORE:
            continue
        pipeline.version += 1
        pipeline.config = AFTER
        pipeline.save(update_fields=["version", "config", "updated_at"])
        PipelineVersion.objects.create(pipeline=pipeline, version=pipeline.version, config=AFTER)


class Migration(migrations.Migration):
    dependencies = [("pipelines", "0001_initial")]

    operations = [migrations.RunPython(add_ocr, migrations.RunPython.noop)]
