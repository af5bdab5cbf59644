import copy
import re

from django.conf import settings
from drf_spectacular.utils import OpenApiRequest, PolymorphicProxySerializer, extend_schema_field
from rest_framework import serializers

from jobs.models import Job, JobEvent, JobFile, JobStatus, Priority, SourceType
from pipeline_project.lib import fields
from pipelines.ocr import DEFAULT_MODE, MODES

METADATA_MAX_BYTES = 16 * 1024
PRIORITY_NAMES = {value: label for value, label in Priority.choices}
PRIORITY_VALUES = {label: value for value, label in Priority.choices}
IDEMPOTENCY_KEY = re.compile(r"^[!-~]{1,255}$")  # visible ASCII: it is stored and compared as sent


def idempotency_key(request) -> str | None:
    """The ``Idempotency-Key`` header: None when absent, 400 when malformed."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not IDEMPOTENCY_KEY.fullmatch(key):
        message = "Must be 1 to 255 visible ASCII characters."
        raise serializers.ValidationError({"Idempotency-Key": [message]})
    return key


class PriorityField(fields.ChoiceField):
    def __init__(self, **kwargs):
        super().__init__(choices=list(PRIORITY_VALUES), **kwargs)

    def to_internal_value(self, data):
        return PRIORITY_VALUES[super().to_internal_value(data)]

    def to_representation(self, value):
        return PRIORITY_NAMES[value]

    def get_default(self):
        value = super().get_default()  # a name, like the input
        return PRIORITY_VALUES.get(value, value)


def metadata_field(**kwargs) -> fields.JSONObjectField:
    return fields.JSONObjectField(
        max_bytes=METADATA_MAX_BYTES, help_text="Your own key/values (a JSON object, at most 16 KB).", **kwargs
    )


class ShallowFieldsSerializer(serializers.Serializer):
    # Copies its declared fields shallowly for each instance. DRF deep-copies them, re-running each
    # field's __init__ (validators, regexes), which was most of the time of validating a job
    # creation. A field without children keeps nothing of a request but what ``bind`` sets on its
    # copy; fields with children (serializers, lists, dicts) are still deep-copied.
    # (A comment, not a docstring: drf-spectacular would publish it as the subclasses' description.)

    def get_fields(self):
        return {
            name: copy.deepcopy(field) if isinstance(field, serializers.BaseSerializer) or hasattr(field, "child")
            else copy.copy(field)
            for name, field in self._declared_fields.items()
        }  # fmt: skip


class JobOptionsSerializer(ShallowFieldsSerializer):
    """What a job runs with: pipeline, mode, priority and your own metadata."""

    pipeline_id = fields.UUIDField(
        required=False, allow_null=True, help_text="An active pipeline of your organization; its current version runs."
    )
    mode = fields.ChoiceField(
        choices=list(MODES), required=False, default=DEFAULT_MODE,
        help_text="How text is read from pages: " + "; ".join(f"`{name}`: {what}" for name, what in MODES.items())
        + ". The default pipeline's ocr stage follows it.",
    )  # fmt: skip
    priority = PriorityField(required=False, default="normal")
    metadata = metadata_field(required=False, default=dict)


class _JobSourceSerializer(JobOptionsSerializer):
    # Fields every kind of job source has; the subclasses add their own.

    file_name = fields.CharField(required=False, allow_blank=True, max_length=255, default="")
    file_size = fields.IntegerField(required=False, allow_null=True, min_value=0)
    mime_type = fields.CharField(required=False, allow_blank=True, max_length=127, default="")
    webhook_url = fields.URLField(
        required=False, allow_blank=True, max_length=2000, default="", validators=[fields.public_url]
    )


class UrlJobCreateSerializer(_JobSourceSerializer):
    source_type = fields.ChoiceField(choices=[SourceType.URL])
    source_uri = fields.URLField(
        max_length=2000, validators=[fields.public_url], help_text="http(s), public hosts only; fetched by the worker."
    )
    start = fields.BooleanField(required=False, default=True, help_text="false creates a draft; start it later.")


class TextJobCreateSerializer(_JobSourceSerializer):
    source_type = fields.ChoiceField(choices=[SourceType.TEXT])
    text = fields.CharField(trim_whitespace=False, help_text="The document itself.")
    start = fields.BooleanField(required=False, default=True, help_text="false creates a draft; start it later.")


class UploadJobCreateSerializer(_JobSourceSerializer):
    """Always a draft: add files (POST /jobs/{id}/files), then start it (or use POST /upload)."""

    source_type = fields.ChoiceField(choices=[SourceType.UPLOAD])

    def validate(self, attrs):
        return {**attrs, "start": False}


SOURCE_SERIALIZERS = {
    SourceType.URL: UrlJobCreateSerializer,
    SourceType.TEXT: TextJobCreateSerializer,
    SourceType.UPLOAD: UploadJobCreateSerializer,
}
JOB_CREATE_REQUEST = PolymorphicProxySerializer(
    component_name="JobCreateRequest",
    serializers={str(kind): serializer for kind, serializer in SOURCE_SERIALIZERS.items()},
    resource_type_field_name="source_type",
)


class JobCreateSerializer(ShallowFieldsSerializer):
    """Validates a creation request with the serializer of its ``source_type`` (the schema's oneOf)."""

    source_type = fields.ChoiceField(choices=SourceType.choices)

    def to_internal_value(self, data):
        source_type = super().to_internal_value(data)["source_type"]
        serializer = SOURCE_SERIALIZERS[source_type](data=data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data


class RetrySerializer(serializers.Serializer):
    updated_config = JobOptionsSerializer(required=False, partial=True)

    def validate_updated_config(self, value):
        return {key: value[key] for key in self.initial_data.get("updated_config", {}) if key in value}


class CancelSerializer(serializers.Serializer):
    confirm_token = fields.CharField(required=False, help_text="From the first call; omit to get one.")


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


class PipelineRefSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    version = serializers.IntegerField()


class JobSerializer(serializers.Serializer):
    """A job: its source, status, progress, pipeline, error and links."""

    # Built by hand in ``to_representation`` (lists render many), the fields document it.

    id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=JobStatus.choices)
    source_type = serializers.ChoiceField(choices=SourceType.choices)
    source_uri = serializers.CharField()
    file_name = serializers.CharField()
    file_size = serializers.IntegerField(allow_null=True)
    mime_type = serializers.CharField()
    mode = serializers.ChoiceField(choices=list(MODES))
    priority = serializers.ChoiceField(choices=list(PRIORITY_VALUES))
    pipeline = PipelineRefSerializer(allow_null=True, help_text="The pipeline and version the job runs.")
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
        path = f"/api/v1/jobs/{job.id}"
        request = self.context.get("request")  # none in webhook messages
        base = request.build_absolute_uri(path) if request is not None else settings.PUBLIC_URL + path
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


_DATE_TIME = serializers.DateTimeField()  # stateless when rendering: one for every call


def _iso(value):
    return None if value is None else _DATE_TIME.to_representation(value)


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
    pipeline_id = fields.UUIDField(
        required=False, help_text="An active pipeline of your organization (default: the `default` one)."
    )
    detect = fields.BooleanField(
        required=False, default=False, help_text="Record the detected type and encoding on each file now."
    )


@extend_schema_field({"type": "string", "format": "binary", "minLength": 1})
class DocumentField(serializers.FileField):
    pass  # for the schema: a file part, never empty (400 ``empty_file``)


class UploadSerializer(UploadOptionsSerializer):
    """Documents to upload (one queued job each) and the options every job of them takes."""

    files = serializers.ListField(
        child=DocumentField(),
        min_length=1,
        max_length=settings.UPLOAD_MAX_FILES,
        help_text="One or more files (one job each), at most UPLOAD_MAX_FILES.",
    )


UPLOAD_REQUEST = {
    "multipart/form-data": OpenApiRequest(UploadSerializer, encoding={"metadata": {"contentType": "application/json"}})
}


class UploadResponseSerializer(serializers.Serializer):
    jobs = JobSerializer(many=True)


class AddFilesSerializer(serializers.Serializer):
    """Documents to add to a draft job."""

    files = serializers.ListField(
        child=DocumentField(), min_length=1, max_length=settings.JOB_MAX_FILES, help_text="At most JOB_MAX_FILES."
    )


ADD_FILES_REQUEST = {"multipart/form-data": AddFilesSerializer}


class FilesResponseSerializer(serializers.Serializer):
    files = JobFileSerializer(many=True)


class JobResultSerializer(serializers.Serializer):
    job_id = serializers.UUIDField(source="job.id")
    text = serializers.SerializerMethodField(help_text="The text, when small enough to send inline; else null.")
    text_url = serializers.SerializerMethodField(help_text="GET it for the text as text/plain (streamed).")
    text_size = serializers.IntegerField(help_text="Bytes of UTF-8 text.")
    markdown_url = serializers.SerializerMethodField(
        help_text="GET it for the result as text/markdown: headings, lists, tables and page breaks kept."
    )
    quality_score = serializers.FloatField(allow_null=True)
    processing_time_ms = serializers.IntegerField()
    metadata = serializers.DictField(source="result_metadata")
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True)

    def get_text(self, result) -> str | None:
        return None if result.output_uri else result.extracted_text

    def get_text_url(self, result) -> str:
        return self.context["request"].build_absolute_uri(f"/api/v1/jobs/{result.job_id}/result/text")

    def get_markdown_url(self, result) -> str:
        return self.context["request"].build_absolute_uri(f"/api/v1/jobs/{result.job_id}/result/markdown")


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
