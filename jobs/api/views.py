from django.conf import settings
from django.core.files.storage import default_storage
from django.http import FileResponse, HttpResponse, HttpResponseRedirect
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.generics import get_object_or_404
from rest_framework.parsers import MultiPartParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import roles
from jobs import confirmation, selectors, services
from jobs.api.filters import SORT_FIELDS, JobFilter, job_ordering
from jobs.api.serializers import (
    CancelConfirmationSerializer,
    CancelSerializer,
    FilesRequestSerializer,
    FilesResponseSerializer,
    JobCreateSerializer,
    JobDetailSerializer,
    JobEventSerializer,
    JobFileSerializer,
    JobResultSerializer,
    JobSerializer,
    QueueHealthSerializer,
    RetrySerializer,
    UploadOptionsSerializer,
    UploadRequestSerializer,
    UploadResponseSerializer,
)
from jobs.models import Job, JobResult, JobStatus
from jobs.uploads import Upload, inspect, use_limited_upload_handler
from pipeline_project.lib.errors import ApplicationError, InvalidStateError, NotFoundError
from pipeline_project.lib.pagination import CursorPagination, PagePagination
from pipeline_project.lib.renderers import PlainTextRenderer
from pipelines.selectors import pipeline_for_job
from pipelines.services import default_pipeline_version

IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description="Same key and body within 24 h return the same job (200); another body is a 409.",
)
LIST_PARAMETERS = [
    OpenApiParameter("sort_by", OpenApiTypes.STR, enum=SORT_FIELDS, description="Default created_at."),
    OpenApiParameter("sort_order", OpenApiTypes.STR, enum=["asc", "desc"], description="Default desc."),
    OpenApiParameter("cursor", OpenApiTypes.STR, description="Cursor pagination (no total): empty, then next_cursor."),
]


@extend_schema(tags=["jobs"])
class JobViewSet(viewsets.GenericViewSet):
    """Jobs of the caller's organization."""

    required_permission = {
        "list": roles.JOBS_READ,
        "retrieve": roles.JOBS_READ,
        "events": roles.JOBS_READ,
        "create": roles.JOBS_CREATE,
        "start": roles.JOBS_CREATE,
        "destroy": roles.JOBS_CANCEL,
        "cancel": roles.JOBS_CANCEL,
        "retry": roles.JOBS_RETRY,
        "files": roles.JOBS_READ,
        "add_files": roles.JOBS_CREATE,
        "delete_file": roles.JOBS_CREATE,
        "result": roles.JOBS_READ,
        "result_text": roles.JOBS_READ,
    }
    queryset = Job.objects.none()  # for the schema; requests use the selectors
    serializer_class = JobSerializer
    filterset_class = JobFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        if self.action == "retrieve":
            return selectors.job_detail_queryset(principal=self.request.auth)
        return selectors.job_queryset(principal=self.request.auth)

    @property
    def paginator(self):
        if not hasattr(self, "_paginator"):
            deep = self.action == "events" or "cursor" in self.request.query_params
            self._paginator = CursorPagination() if deep else PagePagination()
        return self._paginator

    @property
    def cursor_ordering(self):
        return ("id",) if self.action == "events" else job_ordering(self.request.query_params)

    @extend_schema(summary="List jobs", parameters=LIST_PARAMETERS)
    def list(self, request):
        jobs = self.filter_queryset(self.get_queryset()).order_by(*job_ordering(request.query_params))
        page = self.paginate_queryset(jobs)
        return self.get_paginated_response(JobSerializer(page, many=True, context={"request": request}).data)

    @extend_schema(
        summary="Create a job",
        description="A `url` job fetches its document in the worker; a `text` job carries it inline; an `upload` "
        "job starts as a draft to add files to (or use POST /upload). Queued jobs are enqueued on RQ after commit.",
        request=JobCreateSerializer,
        responses={201: JobSerializer, 200: JobSerializer},
        parameters=[IDEMPOTENCY_HEADER],
        examples=[
            OpenApiExample(
                "URL",
                request_only=True,
                value={
                    "source_type": "url",
                    "source_uri": "https://example.com/report.pdf",
                    "priority": "high",
                    "metadata": {"customer": "acme"},
                },  # fmt: skip
            ),
            OpenApiExample("Text", request_only=True, value={"source_type": "text", "text": "Hello, world."}),
        ],
    )
    def create(self, request):
        serializer = JobCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        key = request.headers.get("Idempotency-Key", "").strip()
        if len(key) > 255:
            raise ApplicationError("Idempotency-Key is at most 255 characters.", code="invalid")
        data = dict(serializer.validated_data)
        fingerprint = services.request_hash(data) if key else ""
        job, created = services.job_create(
            principal=request.auth,
            idempotency_key=key or None,
            fingerprint=fingerprint,
            pipeline_version=_pipeline_version(request, data.pop("pipeline_id", None)),
            **data,
        )
        return Response(
            JobSerializer(job, context={"request": request}).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(summary="Get a job", responses=JobDetailSerializer)
    def retrieve(self, request, pk=None):
        return Response(JobDetailSerializer(self.get_object(), context={"request": request}).data)

    @extend_schema(summary="Cancel a job (one step)", description="Like POST /cancel without the confirmation.")
    def destroy(self, request, pk=None):
        services.job_cancel(job=self.get_object(), actor=request.auth.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Cancel a job (two steps)",
        description="Without `confirm_token`: 202 with a token (valid 120 s, for this job and caller) and what "
        "cancelling loses. With it: cancels; a queued or draft job becomes cancelled, a processing one cancelling "
        "(its worker stops it).",
        request=CancelSerializer,
        responses={200: JobSerializer, 202: CancelConfirmationSerializer},
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        serializer = CancelSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        job, actor = self.get_object(), request.auth.actor
        token = serializer.validated_data.get("confirm_token")
        if token is None:
            return Response(self._cancel_confirmation(job, actor), status=status.HTTP_202_ACCEPTED)
        problem = confirmation.cancel_token_error(token, job_id=job.id, actor=actor)
        if problem:
            raise ApplicationError(problem, code="invalid_confirm_token", details={"confirm_token": [problem]})
        job = services.job_cancel(job=job, actor=actor)
        return Response(JobSerializer(job, context={"request": request}).data)

    def _cancel_confirmation(self, job: Job, actor: str) -> dict:
        if not job.can_cancel():
            raise InvalidStateError(f"A {job.status} job cannot be cancelled.", details={"status": job.status})
        return {
            "confirm_token": confirmation.cancel_token(job_id=job.id, actor=actor),
            "expires_in": confirmation.CANCEL_TOKEN_MAX_AGE,
            "message": f"Send this token back within {confirmation.CANCEL_TOKEN_MAX_AGE} s to cancel the job.",
            "will_lose": selectors.job_cancel_preview(job=job),
        }

    @extend_schema(
        summary="Retry a failed or cancelled job",
        description="Creates a new queued job with the same source, files and configuration, optionally "
        "overriding priority, mode and metadata. Both jobs link to each other.",
        request=RetrySerializer,
        responses={201: JobSerializer},
    )
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        serializer = RetrySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        overrides = dict(serializer.validated_data.get("updated_config", {}))
        if "pipeline_id" in overrides:
            overrides["pipeline_version"] = _pipeline_version(request, overrides.pop("pipeline_id"), "updated_config")
        job = services.job_retry(job=self.get_object(), principal=request.auth, overrides=overrides)
        return Response(JobSerializer(job, context={"request": request}).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Start a draft job", request=None, responses=JobSerializer)
    @action(detail=True, methods=["post"])
    def start(self, request, pk=None):
        job = services.job_start(job=self.get_object(), actor=request.auth.actor)
        return Response(JobSerializer(job, context={"request": request}).data)

    @extend_schema(summary="The job's timeline", responses=JobEventSerializer(many=True))
    @action(detail=True, methods=["get"])
    def events(self, request, pk=None):
        events = selectors.job_events(job=self.get_object())
        page = self.paginate_queryset(events)
        return self.get_paginated_response(JobEventSerializer(page, many=True).data)

    @extend_schema(summary="List a job's files", responses=JobFileSerializer(many=True))
    @action(detail=True, methods=["get"], parser_classes=[MultiPartParser])  # the POST (add_files) is multipart
    def files(self, request, pk=None):
        page = self.paginate_queryset(selectors.job_files(job=self.get_object()))
        return self.get_paginated_response(JobFileSerializer(page, many=True).data)

    @extend_schema(
        summary="Add files to a draft job",
        description=f"Multipart, field `files` (repeat it). Drafts only; at most JOB_MAX_FILES (default "
        f"{settings.JOB_MAX_FILES}) per job. Types are checked from the content.",
        request={"multipart/form-data": FilesRequestSerializer},
        responses={201: FilesResponseSerializer},
    )
    @files.mapping.post
    def add_files(self, request, pk=None):
        job = self.get_object()
        uploads = _received_uploads(request, max_files=settings.JOB_MAX_FILES)
        files = services.job_files_add(job=job, uploads=uploads)
        return Response({"files": JobFileSerializer(files, many=True).data}, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Remove a file from a draft job", responses={204: None})
    @action(detail=True, methods=["delete"], url_path=r"files/(?P<file_id>[^/]+)")
    def delete_file(self, request, pk=None, file_id=None):
        job = self.get_object()
        job_file = get_object_or_404(selectors.job_files(job=job), pk=file_id)
        services.job_file_delete(job=job, job_file=job_file)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(summary="The job's result", responses=JobResultSerializer)
    @action(detail=True, methods=["get"])
    def result(self, request, pk=None):
        result = self._result()
        return Response(JobResultSerializer(result, context={"request": request}).data)

    @extend_schema(
        summary="The extracted text, streamed as text/plain",
        description="Redirects to a presigned URL when results are stored on S3.",
        responses={(200, "text/plain"): OpenApiTypes.STR},
    )
    @action(detail=True, methods=["get"], url_path="result/text", renderer_classes=[JSONRenderer, PlainTextRenderer])
    def result_text(self, request, pk=None):
        result = self._result()
        if not result.output_uri:
            return HttpResponse(result.extracted_text, content_type="text/plain; charset=utf-8")
        if settings.AWS_STORAGE_BUCKET_NAME:
            return HttpResponseRedirect(default_storage.url(result.output_uri))
        response = FileResponse(default_storage.open(result.output_uri, "rb"), content_type="text/plain; charset=utf-8")
        response["Content-Length"] = result.text_size
        return response

    def _result(self) -> JobResult:
        job = self.get_object()
        result = JobResult.objects.filter(job=job).first() if job.status == JobStatus.COMPLETED else None
        if result is None and job.status == JobStatus.COMPLETED:
            raise NotFoundError(
                "The job's result has expired (RESULT_RETENTION) and was deleted; retry the job to produce it again.",
                code="result_expired",
            )
        if result is None:
            raise NotFoundError(
                f"The job is {job.status}; its result exists once it is completed.",
                code="job_not_completed",
                details={"status": job.status},
            )
        return result

    def get_object(self):
        return get_object_or_404(self.get_queryset(), pk=self.kwargs["pk"])


def _pipeline_version(request, pipeline_id, field: str = "pipeline_id"):
    """The version to run for ``pipeline_id`` (the organization's default pipeline when None);
    400 naming ``field`` if the pipeline is not an active one of the caller's organization."""
    if pipeline_id is None:
        return default_pipeline_version(organization=request.auth.organization)
    version = pipeline_for_job(principal=request.auth, pipeline_id=pipeline_id)
    if version is None:
        message = "No active pipeline of your organization has this id."
        raise ApplicationError(message, code="invalid", details={field: [message]})
    return version


def _received_uploads(request, *, max_files: int) -> list[Upload]:
    """The request's files (field ``files``, or ``file``), streamed, limited and inspected."""
    use_limited_upload_handler(request, max_files=max_files)
    received = request.FILES.getlist("files") + request.FILES.getlist("file")
    if not received:
        raise ApplicationError("Send one or more files in the field `files`.", code="invalid",
                               details={"files": ["No file was submitted."]})  # fmt: skip
    return [inspect(uploaded) for uploaded in received]


@extend_schema(tags=["health"])
class QueueHealthView(APIView):
    required_permission = roles.JOBS_READ

    @extend_schema(
        summary="Queues, workers and recent throughput",
        description="Depth of each RQ queue with its started and failed registries, the workers (name, "
        "state, busy), and your organization's jobs completed and failed in the last 1 and 5 minutes.",
        responses=QueueHealthSerializer,
    )
    def get(self, request):
        return Response(selectors.queue_health(principal=request.auth))


@extend_schema(tags=["jobs"])
class UploadView(APIView):
    required_permission = roles.JOBS_CREATE
    parser_classes = [MultiPartParser]

    @extend_schema(
        summary="Upload documents: one queued job per file",
        description="Multipart: `files` (repeat it; at most UPLOAD_MAX_FILES), and optionally `priority`, "
        "`mode`, `metadata` (JSON text), `detect`. Files stream to storage, never whole into memory. Size "
        "is checked while receiving (413), type from the content (415). All or nothing: any failure leaves no "
        "job and no stored file.",
        request={"multipart/form-data": UploadRequestSerializer},
        responses={201: UploadResponseSerializer},
    )
    def post(self, request):
        uploads = _received_uploads(request, max_files=settings.UPLOAD_MAX_FILES)
        options = UploadOptionsSerializer(data=request.data)
        options.is_valid(raise_exception=True)
        data = dict(options.validated_data)
        jobs = services.jobs_from_uploads(
            principal=request.auth,
            uploads=uploads,
            record_detection=data.pop("detect"),
            pipeline_version=_pipeline_version(request, data.pop("pipeline_id", None)),
            **data,
        )
        return Response(
            {"jobs": JobSerializer(jobs, many=True, context={"request": request}).data},
            status=status.HTTP_201_CREATED,
        )
