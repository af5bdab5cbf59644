"""What pipelines announce (``pipeline_project.lib.events``): ``pipeline.created``, ``.updated``
and ``.deleted``, each carrying the pipeline as ``GET /pipelines/{id}`` shows it after the change
(before it, for a deletion). Called by ``pipelines.services`` inside the change's transaction."""

from pipeline_project.lib.events import Event, announce
from pipelines.models import Pipeline


def pipeline_changed(pipeline: Pipeline, event_type: str) -> None:
    def render() -> dict:
        from pipelines.api.serializers import PipelineSerializer  # the API's representation

        return dict(PipelineSerializer(pipeline).data)

    announce([Event(type=event_type, organization_id=pipeline.organization_id, render=render)])
