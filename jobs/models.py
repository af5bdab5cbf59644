import uuid

from django.db import models
from django.db.models import Q

from accounts.models import ApiKey, Organization, User
from pipeline_project.lib.errors import InvalidStateError
from pipelines.models import Pipeline, PipelineVersion


class JobStatus(models.TextChoices):
    DRAFT = "draft"
    QUEUED = "queued"
    PROCESSING = "processing"
    CANCELLING = "cancelling"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


# The state machine: every status change is checked against it in jobs.services (job_transition
# answers anything not listed here with 409 invalid_state; the worker's fenced writes assert it).
TRANSITIONS: dict[str, frozenset[str]] = {
    JobStatus.DRAFT: frozenset({JobStatus.QUEUED, JobStatus.CANCELLED}),
    JobStatus.QUEUED: frozenset({JobStatus.PROCESSING, JobStatus.CANCELLED, JobStatus.FAILED}),
    JobStatus.PROCESSING: frozenset(
        {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLING, JobStatus.QUEUED}  # QUEUED: crash requeue
    ),
    JobStatus.CANCELLING: frozenset({JobStatus.CANCELLED}),
    JobStatus.COMPLETED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
}
TERMINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})


class Priority(models.IntegerChoices):
    """Stored as a number so that sorting by priority puts ``high`` first."""

    HIGH = 1, "high"
    NORMAL = 2, "normal"
    LOW = 3, "low"


QUEUE_FOR_PRIORITY = {Priority.HIGH: "high", Priority.NORMAL: "default", Priority.LOW: "low"}


class SourceType(models.TextChoices):
    UPLOAD = "upload"
    URL = "url"
    TEXT = "text"


class Job(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="jobs")
    created_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_by_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    source_type = models.CharField(max_length=8, choices=SourceType.choices)
    source_uri = models.TextField(blank=True)
    file_name = models.CharField(max_length=255, blank=True)
    file_size = models.BigIntegerField(null=True, blank=True)
    mime_type = models.CharField(max_length=127, blank=True)
    mode = models.CharField(max_length=32, default="standard")
    priority = models.PositiveSmallIntegerField(choices=Priority.choices, default=Priority.NORMAL)
    pipeline = models.ForeignKey(Pipeline, null=True, blank=True, on_delete=models.PROTECT, related_name="jobs")
    pipeline_version = models.ForeignKey(
        PipelineVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="jobs"
    )
    config = models.JSONField(
        default=dict, blank=True, help_text="Snapshot of the pipeline version's config: what the job runs."
    )
    metadata = models.JSONField(default=dict, blank=True)
    webhook_url = models.URLField(max_length=2000, blank=True)
    progress_percent = models.PositiveSmallIntegerField(default=0)
    progress_stage = models.CharField(max_length=64, blank=True)
    stages_done = models.PositiveSmallIntegerField(default=0)
    stages_total = models.PositiveSmallIntegerField(default=0)
    attempts = models.PositiveSmallIntegerField(default=0)
    max_attempts = models.PositiveSmallIntegerField(default=3)
    locked_by = models.CharField(max_length=255, blank=True)
    locked_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True, help_text='{"code", "message", "stage"} when failed.')
    retried_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="retries")
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001 (NULL = none, unique)
    request_hash = models.CharField(max_length=64, blank=True, help_text="SHA-256 of the creating request.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "jobs"
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["organization", "-created_at", "-id"], name="job_org_created"),
            models.Index(fields=["organization", "status", "-created_at", "-id"], name="job_org_status_created"),
            models.Index(fields=["status", "priority", "created_at"], name="job_polling"),
            models.Index(fields=["-created_at", "-id"], name="job_created"),  # staff's list of every organization
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="job_unique_idempotency_key",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.file_name or self.source_type} ({self.status})"

    def can_transition_to(self, status: str) -> bool:
        return status in TRANSITIONS[self.status]

    def can_cancel(self) -> bool:
        """Drafts, queued and processing jobs; a cancelling one is finished by its worker."""
        return self.status in (JobStatus.DRAFT, JobStatus.QUEUED, JobStatus.PROCESSING)

    def ensure_can_cancel(self) -> None:
        """409 ``invalid_state`` unless ``can_cancel``: the one refusal, for the cancel preview and ``job_cancel``."""
        if not self.can_cancel():
            raise InvalidStateError(f"A {self.status} job cannot be cancelled.", details={"status": self.status})

    def can_retry(self) -> bool:
        """Failed and cancelled jobs; a retry is a new job, this one stays as it ended."""
        return self.status in (JobStatus.FAILED, JobStatus.CANCELLED)

    def can_start(self) -> bool:
        """Drafts only: anything else has started already."""
        return self.status == JobStatus.DRAFT

    def accepts_files(self) -> bool:
        """Files are added to and removed from drafts only: a started job's input is fixed."""
        return self.status == JobStatus.DRAFT

    @property
    def status_after_cancel(self) -> str:
        """A processing job becomes cancelling (its worker stops it); others end cancelled at once."""
        return JobStatus.CANCELLING if self.status == JobStatus.PROCESSING else JobStatus.CANCELLED

    @property
    def queue_name(self) -> str:
        return QUEUE_FOR_PRIORITY[self.priority]


class FileStatus(models.TextChoices):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"


class JobFile(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="files")
    storage_name = models.CharField(max_length=500, help_text="Name of the stored object in the default storage.")
    original_name = models.CharField(max_length=255)
    size = models.BigIntegerField()
    mime_type = models.CharField(max_length=127)
    sha256 = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=FileStatus.choices, default=FileStatus.PENDING)
    processing_status = models.CharField(max_length=255, blank=True)
    error = models.TextField(blank=True)
    result = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    storage_deleted_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When this file let go of its stored object, UPLOAD_RETENTION after its job ended "
        "(cleanup_uploads; the object goes once no file holds it). Its job cannot be retried then.",
    )

    class Meta:
        db_table = "job_files"
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["sha256"], name="job_file_sha256"),  # the content-hash result cache
            models.Index(fields=["storage_name"], name="job_file_storage_name"),  # who holds a stored object
        ]

    def __str__(self) -> str:
        return self.original_name

    @classmethod
    def for_stored(cls, *, job: Job, storage_name: str, name: str, size: int, mime_type: str, sha256: str,
                   result: dict | None = None) -> "JobFile":  # fmt: skip
        """An unsaved file of ``job`` for an object already in the default storage (``storage_name``;
        several jobs may share one object, as retries do): the one way every input file is built."""
        return cls(
            job=job,
            storage_name=storage_name,
            original_name=name,
            size=size,
            mime_type=mime_type[:127],  # the column's length: a server's Content-Type can be longer
            sha256=sha256,
            result=result,
        )


class JobEvent(models.Model):
    """The job's timeline: one row per status change, written with the change."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="events")
    from_status = models.CharField(max_length=16, blank=True)
    to_status = models.CharField(max_length=16)
    actor = models.CharField(max_length=64, help_text='"user:<id>", "key:<id>" or "system".')
    message = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "job_events"
        ordering = ["id"]
        indexes = [models.Index(fields=["job", "id"], name="job_event_job_id")]

    def __str__(self) -> str:
        return f"{self.from_status or '-'} -> {self.to_status}"


class JobResult(models.Model):
    """What a completed job produced (seed 003 phase 2). Large texts live in storage (``output_uri``)."""

    job = models.OneToOneField(Job, on_delete=models.CASCADE, related_name="result", primary_key=True)
    extracted_text = models.TextField(blank=True, help_text="Empty when the text is in storage (output_uri).")
    result_metadata = models.JSONField(default=dict)
    quality_score = models.FloatField(null=True, blank=True)
    processing_time_ms = models.PositiveIntegerField(default=0)
    output_uri = models.CharField(max_length=500, blank=True, help_text="Storage name of the text when large.")
    text_size = models.PositiveBigIntegerField(default=0, help_text="Bytes of UTF-8 text.")
    markdown = models.TextField(blank=True, help_text="The Markdown rendering; empty when in storage (markdown_uri).")
    markdown_uri = models.CharField(max_length=500, blank=True, help_text="Storage name of the Markdown when large.")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    # The result's renderings: kind -> (its field when inline, its field naming it when in storage, content type)
    RENDERINGS = {
        "text": ("extracted_text", "output_uri", "text/plain; charset=utf-8"),
        "markdown": ("markdown", "markdown_uri", "text/markdown; charset=utf-8"),
    }

    class Meta:
        db_table = "job_results"
        indexes = [models.Index(fields=["expires_at"], name="job_result_expires")]

    def __str__(self) -> str:
        return f"result of {self.job_id}"
