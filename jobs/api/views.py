from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.generics import get_object_or_404
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import roles
from jobs import confirmation, selectors, services
from jobs.api.filters import SORT_PARAMETERS, JobFilter, job_ordering
from jobs.api.serializers import (
    ADD_FILES_REQUEST,
    IDEMPOTENCY_KEY,
    JOB_CREATE_REQUEST,
    UPLOAD_REQUEST,
    CancelConfirmationSerializer,
    CancelSerializer,
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
    UploadResponseSerializer,
    idempotency_key,
)
from jobs.api.uploads import received_files
from jobs.models import Job, JobResult
from pipeline_project.lib.errors import ApplicationError
from pipeline_project.lib.pagination import CursorPagination, PageOrCursorPagination, PagePagination
from pipeline_project.lib.schema import errors
from pipeline_project.lib.storage import text_response
from pipelines.detection import SUPPORTED

IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    {"type": "string", "pattern": IDEMPOTENCY_KEY.pattern},
    OpenApiParameter.HEADER,
    description="1-255 visible ASCII characters. Same key and body within 24 h return the same job (200); "
    "another body is a 409 `idempotency_key_reused`.",
)
NOT_CANCELLABLE = "`invalid_state`: the job is finished or already being cancelled."
NOT_A_DRAFT = "`invalid_state`: the job is not a draft any more."
NO_PIPELINE = "`not_found`: no active pipeline of your organization has this `pipeline_id`."
NOT_COMPLETED = "`job_not_completed`: the job has no result until it completes."
NO_RESULT = "`not_found`; `result_expired`: the result was deleted after RESULT_RETENTION."


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
        "result_markdown": roles.JOBS_READ,
    }
    queryset = Job.objects.none()  # for the schema; requests use the selectors
    serializer_class = JobSerializer
    filterset_class = JobFilter
    pagination_class = PageOrCursorPagination

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        if self.action == "retrieve":
            return selectors.job_detail_queryset(principal=self.request.auth)
        return selectors.job_queryset(principal=self.request.auth)

    @property
    def cursor_ordering(self):
        return ("id",) if self.action == "events" else job_ordering(self.request.query_params)

    @extend_schema(summary="List jobs", parameters=SORT_PARAMETERS)
    def list(self, request):
        jobs = self.filter_queryset(self.get_queryset()).order_by(*job_ordering(request.query_params))
        page = self.paginate_queryset(jobs)
        return self.get_paginated_response(JobSerializer(page, many=True, context={"request": request}).data)

    @extend_schema(
        summary="Create a job",
        description="A `url` job fetches its document in the worker; a `text` job carries it inline; an `upload` "
        "job starts as a draft to add files to (or use POST /upload). Queued jobs are enqueued on RQ after commit.",
        request=JOB_CREATE_REQUEST,
        responses={
            201: JobSerializer,
            200: JobSerializer,
            **errors(
                not_found=NO_PIPELINE,
                conflict="`idempotency_key_reused`: the Idempotency-Key came with another request.",
            ),
        },
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
        key = idempotency_key(request)
        data = serializer.validated_data
        job, created = services.job_create(
            principal=request.auth,
            idempotency_key=key,
            fingerprint=services.request_hash(data) if key else "",
            **data,
        )
        return Response(
            JobSerializer(job, context={"request": request}).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(summary="Get a job", responses=JobDetailSerializer)
    def retrieve(self, request, pk=None):
        return Response(JobDetailSerializer(self.get_object(), context={"request": request}).data)

    @extend_schema(
        summary="Cancel a job (one step)",
        description="Cancels the job, like POST /cancel without the confirmation. Jobs are never deleted through "
        "the API: the job stays readable, `cancelled` (or `cancelling` while its worker stops).",
        responses={204: None, **errors(conflict=NOT_CANCELLABLE)},
    )
    def destroy(self, request, pk=None):
        services.job_cancel(job=self.get_object(), actor=request.auth.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Cancel a job (two steps)",
        description="Without `confirm_token`: 202 with a token (valid 120 s, for this job and caller) and what "
        "cancelling loses. With it: cancels; a queued or draft job becomes cancelled, a processing one cancelling "
        "(its worker stops it).",
        request=CancelSerializer,
        responses={200: JobSerializer, 202: CancelConfirmationSerializer, **errors(conflict=NOT_CANCELLABLE)},
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
        will_lose = selectors.job_cancel_preview(job=job)  # 409 if the job cannot be cancelled
        return {
            "confirm_token": confirmation.cancel_token(job_id=job.id, actor=actor),
            "expires_in": confirmation.CANCEL_TOKEN_MAX_AGE,
            "message": f"Send this token back within {confirmation.CANCEL_TOKEN_MAX_AGE} s to cancel the job.",
            "will_lose": will_lose,
        }

    @extend_schema(
        summary="Retry a failed or cancelled job",
        description="Creates a new queued job with the same source, files and configuration, optionally "
        "overriding priority, mode and metadata. Both jobs link to each other.",
        request=RetrySerializer,
        responses={
            201: JobSerializer,
            **errors(
                not_found=f"No such job; {NO_PIPELINE}",
                conflict="`invalid_state`: only failed or cancelled jobs. `inputs_deleted`: the job's stored input "
                "files were deleted UPLOAD_RETENTION after it ended; submit the documents again.",
            ),
        },
    )
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        serializer = RetrySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        overrides = serializer.validated_data.get("updated_config", {})
        job = services.job_retry(job=self.get_object(), principal=request.auth, overrides=overrides)
        return Response(JobSerializer(job, context={"request": request}).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Start a draft job",
        request=None,
        responses={
            200: JobSerializer,
            **errors(conflict=f"{NOT_A_DRAFT} `no_files`: an upload draft needs a file first."),
        },
    )
    @action(detail=True, methods=["post"])
    def start(self, request, pk=None):
        job = services.job_start(job=self.get_object(), actor=request.auth.actor)
        return Response(JobSerializer(job, context={"request": request}).data)

    @extend_schema(summary="The job's timeline", responses=JobEventSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=CursorPagination, filter_backends=[])
    def events(self, request, pk=None):
        events = selectors.job_events(job=self.get_object())
        page = self.paginate_queryset(events)
        return self.get_paginated_response(JobEventSerializer(page, many=True).data)

    @extend_schema(summary="List a job's files", responses=JobFileSerializer(many=True))
    @action(  # the POST (add_files) is multipart
        detail=True,
        methods=["get"],
        parser_classes=[MultiPartParser],
        filter_backends=[],
        pagination_class=PagePagination,
    )
    def files(self, request, pk=None):
        page = self.paginate_queryset(selectors.job_files(job=self.get_object()))
        return self.get_paginated_response(JobFileSerializer(page, many=True).data)

    @extend_schema(
        summary="Add files to a draft job",
        description=f"Multipart, field `files` (repeat it). Drafts only; at most JOB_MAX_FILES (default "
        f"{settings.JOB_MAX_FILES}) per job. Types are checked from the content.",
        request=ADD_FILES_REQUEST,
        responses={
            201: FilesResponseSerializer,
            **errors(conflict=f"{NOT_A_DRAFT} `file_limit`: the job holds JOB_MAX_FILES files."),
        },
    )
    @files.mapping.post
    def add_files(self, request, pk=None):
        job = self.get_object()
        files = services.job_files_add(job=job, files=received_files(request, max_files=settings.JOB_MAX_FILES))
        return Response({"files": JobFileSerializer(files, many=True).data}, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Remove a file from a draft job",
        parameters=[OpenApiParameter("file_id", OpenApiTypes.UUID, OpenApiParameter.PATH)],
        responses={204: None, **errors(conflict=NOT_A_DRAFT)},
    )
    @action(detail=True, methods=["delete"], url_path=r"files/(?P<file_id>[^/]+)")
    def delete_file(self, request, pk=None, file_id=None):
        job = self.get_object()
        job_file = get_object_or_404(selectors.job_files(job=job), pk=file_id)
        services.job_file_delete(job=job, job_file=job_file)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="The job's result",
        responses={200: JobResultSerializer, **errors(not_found=NO_RESULT, conflict=NOT_COMPLETED)},
    )
    @action(detail=True, methods=["get"])
    def result(self, request, pk=None):
        result = selectors.job_result(job=self.get_object())
        return Response(JobResultSerializer(result, context={"request": request}).data)

    @extend_schema(
        summary="The extracted text, streamed as text/plain",
        description="Redirects (302) to a presigned URL when results are stored on S3. Errors are JSON.",
        responses={
            (200, "text/plain"): OpenApiTypes.STR,
            302: None,
            **errors(not_found=NO_RESULT, conflict=NOT_COMPLETED),
        },
    )
    @action(detail=True, methods=["get"], url_path="result/text")
    def result_text(self, request, pk=None):
        return self._rendering("text")

    @extend_schema(
        summary="The result as Markdown",
        description="Headings, lists and tables of DOCX and HTML kept, the pages of PDFs and scans marked "
        "(`<!-- page N -->`), CSV as a table; documents of a job separated by `---`. As `text/markdown`; a "
        "redirect (302) to a presigned URL when results are stored on S3. Errors are JSON.",
        responses={
            (200, "text/markdown"): OpenApiTypes.STR,
            302: None,
            **errors(not_found=NO_RESULT, conflict=NOT_COMPLETED),
        },
    )
    @action(detail=True, methods=["get"], url_path="result/markdown")
    def result_markdown(self, request, pk=None):
        return self._rendering("markdown")

    def _rendering(self, kind: str):
        """The result's text or Markdown: inline, or streamed (a presigned redirect) from storage."""
        return text_response(selectors.job_result(job=self.get_object()), *JobResult.RENDERINGS[kind])

    def get_object(self):
        return get_object_or_404(self.get_queryset(), pk=self.kwargs["pk"])


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
        "is checked while receiving (413), type from the content (415), one of: " + ", ".join(SUPPORTED) + ". "
        "Images are read by OCR. All or nothing: any failure leaves no job and no stored file.",
        request=UPLOAD_REQUEST,
        responses={201: UploadResponseSerializer, **errors(not_found=NO_PIPELINE)},
    )
    def post(self, request):
        files = received_files(request, max_files=settings.UPLOAD_MAX_FILES)
        options = UploadOptionsSerializer(data=request.data)
        options.is_valid(raise_exception=True)
        data = dict(options.validated_data)
        jobs = services.jobs_from_uploads(
            principal=request.auth, files=files, record_detection=data.pop("detect"), **data
        )
        return Response(
            {"jobs": JobSerializer(jobs, many=True, context={"request": request}).data},
            status=status.HTTP_201_CREATED,
        )
