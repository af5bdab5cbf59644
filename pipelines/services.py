import threading

from cachetools import LRUCache
from django.db import IntegrityError, transaction
from django.db.models import F

from accounts.models import Organization, User
from pipeline_project.lib.errors import ConflictError
from pipelines.announcements import pipeline_changed
from pipelines.models import Pipeline, PipelineVersion
from pipelines.validation import DEFAULT_CONFIG

DEFAULT_NAME = "default"


def pipeline_create(*, organization: Organization, name: str, config: dict, description: str = "",
                    is_active: bool = True, created_by: User | None = None) -> Pipeline:  # fmt: skip
    """A new pipeline at version 1 (``config`` already validated). 409 if the name is taken."""
    try:
        with transaction.atomic():
            pipeline = Pipeline.objects.create(
                organization=organization, name=name, description=description, config=config,
                is_active=is_active, created_by=created_by,
            )  # fmt: skip
            PipelineVersion.objects.create(pipeline=pipeline, version=1, config=config, created_by=created_by)
            pipeline_changed(pipeline, "pipeline.created")
    except IntegrityError:
        raise ConflictError(f"A pipeline named {name!r} exists already.", code="name_taken",
                            details={"name": ["Already used in your organization."]}) from None  # fmt: skip
    return pipeline


def pipeline_update_check(*, pipeline: Pipeline, changes: dict) -> None:
    """Raises the ``ConflictError`` that ``pipeline_update`` would for ``changes`` (validated), so a
    form can show it before saving; ``pipeline_update`` checks again under its lock."""
    if changes.get("is_active") is False and pipeline.name == DEFAULT_NAME:
        raise ConflictError("The default pipeline cannot be deactivated.", code="default_pipeline")
    if "name" in changes and changes["name"] != pipeline.name:
        if pipeline.name == DEFAULT_NAME:
            raise ConflictError("The default pipeline cannot be renamed.", code="default_pipeline")
        if Pipeline.objects.filter(organization_id=pipeline.organization_id, name=changes["name"]).exists():
            raise ConflictError(f"A pipeline named {changes['name']!r} exists already.", code="name_taken",
                                details={"name": ["Already used in your organization."]})  # fmt: skip


def pipeline_update(*, pipeline: Pipeline, changes: dict, updated_by: User | None = None) -> Pipeline:
    """Applies ``changes``; a different config makes a new version (jobs keep theirs)."""
    with transaction.atomic():
        pipeline = Pipeline.objects.select_for_update().get(pk=pipeline.pk)
        pipeline_update_check(pipeline=pipeline, changes=changes)
        if "config" in changes and changes["config"] != pipeline.config:
            pipeline.version += 1
            PipelineVersion.objects.create(
                pipeline=pipeline, version=pipeline.version, config=changes["config"], created_by=updated_by
            )
        for field in ("name", "description", "config", "is_active"):
            if field in changes:
                setattr(pipeline, field, changes[field])
        pipeline.save()
        pipeline_changed(pipeline, "pipeline.updated")
    return pipeline


def pipeline_delete(*, pipeline: Pipeline) -> bool:
    """Deletes a pipeline no job used; deactivates one that jobs refer to. True if deleted."""
    if pipeline.name == DEFAULT_NAME:
        raise ConflictError("The default pipeline cannot be deleted.", code="default_pipeline")
    with transaction.atomic():
        if pipeline.jobs.exists():  # kept for its jobs, inactive: an update
            pipeline.is_active = False
            pipeline.save(update_fields=["is_active", "updated_at"])
            pipeline_changed(pipeline, "pipeline.updated")
            return False
        pipeline_changed(pipeline, "pipeline.deleted")  # while the pipeline is still there to show
        pipeline.delete()
        return True


# Organization id -> the current version of its default pipeline (pipeline joined), as last read by
# this process; see ``cached_default_pipeline_version``.
_default_versions: LRUCache = LRUCache(maxsize=4096)
_default_versions_lock = threading.Lock()


def cached_default_pipeline_version(*, organization: Organization) -> PipelineVersion | None:
    """The version of the organization's default pipeline that ``default_pipeline_version`` last
    answered in this process, or None; no query. It may be stale (the pipeline updated since, by
    any process): the caller must check, in the statement that uses it, that it is still the
    current one (the pipeline row's ``id`` and ``version`` unchanged), and ask
    ``default_pipeline_version`` if not (``jobs.services`` does). A version never changes once
    written, so a cached version that is current is what a query would have answered."""
    with _default_versions_lock:
        return _default_versions.get(organization.pk)


def default_pipeline_version(*, organization: Organization, cached: bool = False) -> PipelineVersion:
    """The organization's default pipeline (detect -> extract_text -> language -> quality),
    created on first use; jobs that name no pipeline run its current version. ``cached``: the
    cached version if there is one (``cached_default_pipeline_version``: check it), else a query."""
    if cached and (current := cached_default_pipeline_version(organization=organization)) is not None:
        return current
    current = (
        PipelineVersion.objects.select_related("pipeline")
        .filter(pipeline__organization=organization, pipeline__name=DEFAULT_NAME, version=F("pipeline__version"))
        .first()
    )
    if current is None:
        try:
            pipeline = pipeline_create(organization=organization, name=DEFAULT_NAME, config=DEFAULT_CONFIG,
                                       description="Used when a job names no pipeline.")  # fmt: skip
        except ConflictError:  # created concurrently
            pipeline = Pipeline.objects.get(organization=organization, name=DEFAULT_NAME)
        current = pipeline.versions.select_related("pipeline").get(version=pipeline.version)
    with _default_versions_lock:
        _default_versions[organization.pk] = current
    return current
