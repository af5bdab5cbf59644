import json

from rest_framework import serializers

from jobs.models import Job, JobEvent, JobFile, JobStatus, Priority, SourceType
from pipeline_project.lib.ssrf import UnsafeURL, check_url

METADATA_MAX_BYTES = 16 * 1024
PRIORITY_NAMES = {value: label for value, label in Priority.choices}
PRIORITY_VALUES = {label: value for value, label in Priority.choices}


def check_public_url(value: str) -> str:
    try:
        check_url(value)
    except UnsafeURL as exc:
        raise serializers.ValidationError(str(exc)) from None
    return value


def check_metadata(value):
    if not isinstance(value, dict):
        raise serializers.ValidationError("Must be a JSON object.")
    if len(json.dumps(value, separators=(",", ":")).encode()) > METADATA_MAX_BYTES:
        raise serializers.ValidationError(f"Must be at most {METADATA_MAX_BYTES // 1024} KB as JSON.")
    return value


class PriorityField(serializers.ChoiceField):
    def __init__(self, **kwargs):
        super().__init__(choices=list(PRIORITY_VALUES), **kwargs)

    def to_internal_value(self, data):
        return PRIORITY_VALUES[super().to_internal_value(data)]

    def to_representation(self, value):
        return PRIORITY_NAMES[value]

    def get_default(self):
        value = super().get_default()  # a name, like the input
        return PRIORITY_VALUES.get(value, value)


class JobOptionsSerializer(serializers.Serializer):
    """What a job runs with; shared by creation, upload and retry overrides."""

    pipeline_id = serializers.UUIDField(
        required=False, allow_null=True, help_text="An active pipeline of your organization; its current version runs."
    )
    mode = serializers.RegexField(r"^[a-z0-9_-]{1,32}$", required=False, default="standard")
    priority = PriorityField(required=False, default="normal")
    metadata = serializers.JSONField(required=False, default=dict, validators=[check_metadata])


class JobCreateSerializer(JobOptionsSerializer):
    source_type = serializers.ChoiceField(choices=SourceType.choices)
    source_uri = serializers.CharField(
        required=False, allow_blank=True, max_length=2000, help_text="For `url` sources: http(s), public hosts only."
    )
    text = serializers.CharField(
        required=False, trim_whitespace=False, help_text="For `text` sources: the document itself."
    )
    file_name = serializers.CharField(required=False, allow_blank=True, max_length=255, default="")
    file_size = serializers.IntegerField(required=False, allow_null=True, min_value=0)
    mime_type = serializers.CharField(required=False, allow_blank=True, max_length=127, default="")
    webhook_url = serializers.URLField(
        required=False, allow_blank=True, max_length=2000, default="", validators=[check_public_url]
    )
    start = serializers.BooleanField(
        required=False, default=True, help_text="false creates a draft to add files to; start it later."
    )

    def validate(self, attrs):
        source_type, errors = attrs["source_type"], {}
        if source_type == SourceType.URL:
            if not attrs.get("source_uri"):
                errors["source_uri"] = ["Required for url sources."]
            else:
                try:
                    check_url(attrs["source_uri"])
                except UnsafeURL as exc:
                    errors["source_uri"] = [str(exc)]
        elif attrs.get("source_uri"):
            errors["source_uri"] = [f"Only url sources have a source_uri (this is {source_type})."]
        if source_type == SourceType.TEXT and not attrs.get("text"):
            errors["text"] = ["Required for text sources."]
        elif source_type != SourceType.TEXT and "text" in attrs:
            errors["text"] = ["Only text sources have text."]
        if source_type == SourceType.UPLOAD and attrs["start"]:
            errors["start"] = ["Upload jobs start as drafts (start=false): add files, then start. Or use /upload."]
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class RetrySerializer(serializers.Serializer):
    updated_config = JobOptionsSerializer(required=False, partial=True)

    def validate_updated_config(self, value):
        return {key: value[key] for key in self.initial_data.get("updated_config", {}) if key in value}


class CancelSerializer(serializers.Serializer):
    confirm_token = serializers.CharField(required=False, help_text="From the first call; omit to get one.")


class CancelConfirmationSerializer(serializers.Serializer):
    confirm_token = serializers.CharField()
    expires_in = serializers.IntegerField()
    message = serializers.CharField()
    will_lose = serializers.DictField()


class ProgressSerializer(serializers.Serializer):
    percent = serializers.IntegerField()
    stage = serializers.CharField(allow_blank=True)
    stages_done = serializers.IntegerField()
    stages_total = serializers.IntegerField()


class JobErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    stage = serializers.CharField(allow_null=True)


class JobLinksSerializer(serializers.Serializer):
    self = serializers.URLField()
    files = serializers.URLField()
    result = serializers.URLField()
    events = serializers.URLField()
    cancel = serializers.URLField()
    retry = serializers.URLField()


class JobSerializer(serializers.Serializer):
    """A job in JSON (DESIGN.md). Built by hand in ``to_representation``: lists render many."""

    id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=JobStatus.choices)
    source_type = serializers.ChoiceField(choices=SourceType.choices)
    source_uri = serializers.CharField()
    file_name = serializers.CharField()
    file_size = serializers.IntegerField(allow_null=True)
    mime_type = serializers.CharField()
    mode = serializers.CharField()
    priority = serializers.ChoiceField(choices=list(PRIORITY_VALUES))
    pipeline = serializers.DictField(allow_null=True, help_text="{id, name, version} of the pipeline run.")
    metadata = serializers.DictField()
    webhook_url = serializers.CharField()
    progress = ProgressSerializer()
    attempts = serializers.IntegerField()
    error = JobErrorSerializer(allow_null=True)
    retried_from = serializers.UUIDField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    completed_at = serializers.DateTimeField(allow_null=True)
    links = JobLinksSerializer()

    def to_representation(self, job: Job) -> dict:
        base = self.context["request"].build_absolute_uri(f"/api/v1/jobs/{job.id}")
        pipeline = None
        if job.pipeline_id is not None:
            pipeline = {"id": str(job.pipeline_id), "name": job.pipeline.name, "version": job.pipeline_version.version}
        return {
            "id": str(job.id),
            "status": job.status,
            "source_type": job.source_type,
            "source_uri": job.source_uri,
            "file_name": job.file_name,
            "file_size": job.file_size,
            "mime_type": job.mime_type,
            "mode": job.mode,
            "priority": PRIORITY_NAMES[job.priority],
            "pipeline": pipeline,
            "metadata": job.metadata,
            "webhook_url": job.webhook_url,
            "progress": {
                "percent": job.progress_percent,
                "stage": job.progress_stage,
                "stages_done": job.stages_done,
                "stages_total": job.stages_total,
            },
            "attempts": job.attempts,
            "error": job.error,
            "retried_from": job.retried_from_id and str(job.retried_from_id),
            "created_at": _iso(job.created_at),
            "updated_at": _iso(job.updated_at),
            "started_at": _iso(job.started_at),
            "completed_at": _iso(job.completed_at),
            "links": {
                "self": base,
                "files": f"{base}/files",
                "result": f"{base}/result",
                "events": f"{base}/events",
                "cancel": f"{base}/cancel",
                "retry": f"{base}/retry",
            },
        }


def _iso(value):
    return None if value is None else serializers.DateTimeField().to_representation(value)


class JobFileSerializer(serializers.ModelSerializer):
    name = serializers.CharField(source="original_name")

    class Meta:
        model = JobFile
        fields = ["id", "name", "size", "mime_type", "sha256", "status", "processing_status", "error",
                  "created_at", "updated_at", "completed_at"]  # fmt: skip
        read_only_fields = fields


class JobDetailSerializer(JobSerializer):
    max_attempts = serializers.IntegerField()
    files = JobFileSerializer(many=True)
    retries = serializers.ListField(child=serializers.UUIDField(), help_text="Jobs created by retrying this one.")

    def to_representation(self, job: Job) -> dict:
        data = super().to_representation(job)
        data["max_attempts"] = job.max_attempts
        data["files"] = JobFileSerializer(job.files.all(), many=True).data
        data["retries"] = [str(retry.id) for retry in job.retries.all()]
        return data


class JobEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = JobEvent
        fields = ["id", "from_status", "to_status", "actor", "message", "created_at"]
        read_only_fields = fields


class UploadOptionsSerializer(JobOptionsSerializer):
    metadata = serializers.JSONField(required=False, default=dict, binary=True, validators=[check_metadata])
    detect = serializers.BooleanField(
        required=False, default=False, help_text="Record the detected type and encoding on each file now."
    )


class UploadRequestSerializer(UploadOptionsSerializer):
    """For the schema: the multipart form."""

    files = serializers.ListField(child=serializers.FileField(), help_text="One or more files (one job each).")


class UploadResponseSerializer(serializers.Serializer):
    jobs = JobSerializer(many=True)


class FilesRequestSerializer(serializers.Serializer):
    files = serializers.ListField(child=serializers.FileField())


class FilesResponseSerializer(serializers.Serializer):
    files = JobFileSerializer(many=True)


class JobResultSerializer(serializers.Serializer):
    job_id = serializers.UUIDField(source="job.id")
    text = serializers.SerializerMethodField(help_text="The text, when small enough to send inline; else null.")
    text_url = serializers.SerializerMethodField(help_text="GET it for the text as text/plain (streamed).")
    text_size = serializers.IntegerField(help_text="Bytes of UTF-8 text.")
    quality_score = serializers.FloatField(allow_null=True)
    processing_time_ms = serializers.IntegerField()
    metadata = serializers.DictField(source="result_metadata")
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True)

    def get_text(self, result) -> str | None:
        return None if result.output_uri else result.extracted_text

    def get_text_url(self, result) -> str:
        return self.context["request"].build_absolute_uri(f"/api/v1/jobs/{result.job_id}/result/text")


class QueueStateSerializer(serializers.Serializer):
    queued = serializers.IntegerField()
    started = serializers.IntegerField()
    failed = serializers.IntegerField()


class WorkerStateSerializer(serializers.Serializer):
    name = serializers.CharField()
    state = serializers.CharField()
    queues = serializers.ListField(child=serializers.CharField())
    busy = serializers.BooleanField()


class QueueHealthSerializer(serializers.Serializer):
    queues = serializers.DictField(child=QueueStateSerializer())
    workers = WorkerStateSerializer(many=True)
    jobs = serializers.DictField(child=serializers.DictField(child=serializers.IntegerField()))
