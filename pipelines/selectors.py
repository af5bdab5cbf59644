from accounts.principal import Principal
from pipelines.models import Pipeline, PipelineVersion


def pipeline_for_job(*, principal: Principal, pipeline_id) -> PipelineVersion | None:
    """The current version of an active pipeline of the caller's organization, else None."""
    return (
        PipelineVersion.objects.select_related("pipeline")
        .filter(
            pipeline_id=pipeline_id,
            pipeline__organization_id=principal.organization.pk,
            pipeline__is_active=True,
        )
        .order_by("-version")
        .first()
    )


def pipeline_queryset(*, principal: Principal):
    return Pipeline.objects.filter(organization_id=principal.organization.pk)


def pipeline_versions(*, pipeline: Pipeline):
    return PipelineVersion.objects.filter(pipeline=pipeline).order_by("-version")
