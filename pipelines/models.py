import uuid

from django.db import models

from accounts.models import Organization, User


class Pipeline(models.Model):
    """A named, versioned configuration of stages. Editing the config makes a new
    PipelineVersion; jobs keep the version (and a snapshot of its config) they ran with."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="pipelines")
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    config = models.JSONField(default=dict)
    version = models.PositiveIntegerField(default=1)
    is_active = models.BooleanField(default=True)
    created_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "pipelines"
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="pipeline_unique_name")]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


class PipelineVersion(models.Model):
    """The immutable config of one version of a pipeline."""

    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    config = models.JSONField()
    created_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "pipeline_versions"
        ordering = ["pipeline", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["pipeline", "version"], name="pipeline_version_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.pipeline.name} v{self.version}"
