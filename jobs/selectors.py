from datetime import timedelta

from django.conf import settings
from django.core.files.storage import default_storage
from django.db.models import CharField, Count, Exists, OuterRef, Prefetch, Q, QuerySet, TextField
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, TruncHour
from django.utils import timezone
from rq import Queue, Worker
from rq.registry import FailedJobRegistry, StartedJobRegistry

from accounts.principal import Principal
from jobs.models import Job, JobEvent, JobFile, JobResult, JobStatus, Priority
from pipeline_project.lib.errors import ConflictError, NotFoundError
from pipeline_project.lib.redis import get_redis


def job_queryset(*, principal: Principal) -> QuerySet[Job]:
    """The caller's organization's jobs: nothing else is ever visible (others' answer 404)."""
    return Job.objects.filter(organization_id=principal.organization.pk).select_related("pipeline", "pipeline_version")


def job_detail_queryset(*, principal: Principal) -> QuerySet[Job]:
    return _with_detail(job_queryset(principal=principal))


def jobs_as_announced(job_ids) -> QuerySet[Job]:
    """Jobs with what their API representation shows, for the events announcing a change to them
    (read inside the change's transaction: as it leaves them)."""
    return _with_detail(Job.objects.filter(pk__in=job_ids).select_related("pipeline", "pipeline_version"))


def _with_detail(queryset: QuerySet[Job]) -> QuerySet[Job]:
    return queryset.prefetch_related(
        Prefetch("files", queryset=JobFile.objects.order_by("created_at", "id")),
        Prefetch("retries", queryset=Job.objects.only("id", "retried_from_id", "created_at")),
    )


def job_search(queryset: QuerySet[Job], text: str) -> QuerySet[Job]:
    """File name contains ``text``, the id starts with it, or the metadata contains it."""
    text = text.strip()
    condition = Q(file_name__icontains=text) | Q(metadata_text__icontains=text)
    queryset = queryset.annotate(metadata_text=Cast("metadata", TextField()))
    if all(ch in "0123456789abcdefABCDEF-" for ch in text) and len(text) >= 4:
        queryset = queryset.annotate(id_text=Cast("id", CharField()))
        condition |= Q(id_text__startswith=text.lower())
    return queryset.filter(condition)


def job_cancel_preview(*, job: Job) -> dict:
    """What cancelling ``job`` now would change and lose (the first step of a two-step cancel);
    409 ``invalid_state``, as ``job_cancel`` answers, if it cannot be cancelled."""
    job.ensure_can_cancel()
    return {
        "status": job.status,
        "becomes": job.status_after_cancel,
        "progress_percent": job.progress_percent,
        "stage": job.progress_stage,
        "files": job.files.count(),
        "partial_results_discarded": job.status == JobStatus.PROCESSING,
    }


def job_result(*, job: Job) -> JobResult:
    """A completed job's result; 409 ``job_not_completed`` before (the job exists, its state does not
    allow this yet), 404 ``result_expired`` once the result was deleted."""
    if job.status != JobStatus.COMPLETED:
        raise ConflictError(
            f"The job is {job.status}; its result exists once it is completed.",
            code="job_not_completed",
            details={"status": job.status},
        )
    result = JobResult.objects.filter(job=job).first()
    if result is None:
        raise NotFoundError(
            "The job's result has expired (RESULT_RETENTION) and was deleted; retry the job to produce it again.",
            code="result_expired",
        )
    return result


def job_events(*, job: Job) -> QuerySet[JobEvent]:
    return JobEvent.objects.filter(job=job)


def job_files(*, job: Job) -> QuerySet[JobFile]:
    return JobFile.objects.filter(job=job)


FINISHED = (JobStatus.COMPLETED, JobStatus.FAILED)


def queue_health(*, principal: Principal) -> dict:
    """Queue depths and registries, workers, and the organization's recent throughput."""
    redis = get_redis()
    queues = {}
    for name in settings.RQ_QUEUE_NAMES:
        queue = Queue(name, connection=redis)
        queues[name] = {
            "queued": queue.count,
            "started": StartedJobRegistry(queue=queue).count,
            "failed": FailedJobRegistry(queue=queue).count,
        }
    workers = [
        {"name": worker.name, "state": worker.get_state(), "queues": worker.queue_names(),
         "busy": worker.get_current_job_id() is not None}
        for worker in Worker.all(connection=redis)
    ]  # fmt: skip
    finished = Job.objects.filter(organization_id=principal.organization.pk, status__in=FINISHED)
    recent = {}
    for minutes in (1, 5):
        since = timezone.now() - timedelta(minutes=minutes)
        counts = dict(finished.filter(completed_at__gte=since).values_list("status").annotate(n=Count("id")).order_by())
        recent[f"last_{minutes}m"] = {
            status: counts.get(status, 0) for status in (JobStatus.COMPLETED, JobStatus.FAILED)
        }
    return {"queues": queues, "workers": workers, "jobs": recent}


def oldest_queued_age() -> float | None:
    """Seconds the oldest queued job (any organization) has waited since it was created; None if
    none waits. One probe of the polling index per priority (a backlog is not scanned)."""
    oldest = [
        created
        for priority in Priority.values
        if (created := Job.objects.filter(status=JobStatus.QUEUED, priority=priority).order_by("created_at")
            .values_list("created_at", flat=True).first()) is not None
    ]  # fmt: skip
    return (timezone.now() - min(oldest)).total_seconds() if oldest else None


def job_cancelling(*, job_id) -> Job | None:
    """The job if it is being cancelled (its worker finishes the cancellation)."""
    return Job.objects.filter(pk=job_id, status=JobStatus.CANCELLING).first()


_CACHE_CANDIDATES = 1000  # files with the same bytes looked at; past that, a miss costs only a recomputation


def job_cached_source(*, job: Job, job_file: JobFile) -> JobFile | None:
    """The content-hash cache: the file of the newest completed one-document job of the same
    organization that ran the same pipeline version in the same mode on the same bytes (sha256), with its job and
    result loaded. Found from the file's hash (indexed), so it costs the same at any job count:
    first the other files with these bytes, by a query so simple that even PostgreSQL's generic
    plan for it (prepared statements) takes the index; then, only if there are any, their jobs."""
    if job.pipeline_version_id is None:
        return None
    same_bytes = JobFile.objects.filter(sha256=job_file.sha256).exclude(job_id=job.pk).values_list("pk", flat=True)
    candidates = list(same_bytes[:_CACHE_CANDIDATES])
    if not candidates:
        return None
    others = JobFile.objects.filter(job_id=OuterRef("job_id")).exclude(pk=OuterRef("pk"))
    return (
        JobFile.objects.filter(
            pk__in=candidates,
            job__organization_id=job.organization_id,
            job__pipeline_version_id=job.pipeline_version_id,
            job__mode=job.mode,  # the mode decides which pages OCR reads
            job__status=JobStatus.COMPLETED,
            job__result__isnull=False,
        )
        .exclude(job_id=job.pk)
        .filter(~Exists(others))
        .select_related("job__result")
        .order_by("-job__completed_at")
        .first()
    )


def job_result_rendering(result: JobResult, kind: str) -> str:
    """A result's whole text (``kind`` "text") or Markdown ("markdown"), inline or from storage."""
    inline_field, stored_field, _ = JobResult.RENDERINGS[kind]
    if not (stored := getattr(result, stored_field)):
        return getattr(result, inline_field)
    with default_storage.open(stored, "rb") as opened:
        return opened.read().decode()


# --- The staff dashboard (pipeline_project/dashboard.py) ---------------------------------------
# Every read is bounded by time over the polling index (status, priority, created_at): PostgreSQL's
# index condition is the statuses and a created_at range (checked with EXPLAIN), so a read costs the
# window's jobs, not the table's. There is no index on completed_at: a job that ended in the window
# is counted if it was also created at most ``FINISHED_HORIZON`` before the window opened (one that
# waited longer is an incident the queue depths and the oldest queued age show anyway).

ACTIVE_STATUSES = (JobStatus.DRAFT, JobStatus.QUEUED, JobStatus.PROCESSING, JobStatus.CANCELLING)
ENDED_STATUSES = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)
FINISHED_HORIZON = timedelta(days=1)


def jobs_finished_since(since, statuses=ENDED_STATUSES) -> QuerySet[Job]:
    """Jobs of any organization that ended (``statuses``) since ``since``."""
    return Job.objects.filter(
        status__in=statuses,
        priority__in=Priority.values,  # spelled out: lets the planner use the index's second column
        created_at__gte=since - FINISHED_HORIZON,
        completed_at__gte=since,
    ).order_by()


def dashboard_counts(*, since) -> dict[str, int]:
    """Jobs by status (every status a key): those in flight now, whenever they were created, and
    those that ended since ``since``. Two grouped counts."""
    counts = dict.fromkeys(JobStatus.values, 0)
    active = Job.objects.filter(status__in=ACTIVE_STATUSES).order_by().values_list("status").annotate(n=Count("pk"))
    ended = jobs_finished_since(since).values_list("status").annotate(n=Count("pk"))
    counts.update(active)
    counts.update(ended)
    return counts


def hourly_outcomes(*, since, until=None) -> list[dict]:
    """Jobs completed and failed per hour (UTC, by when they ended) from the hour of ``since`` to
    the hour of ``until`` (now), oldest first, hours without any included:
    ``[{"hour": datetime, "completed": n, "failed": n}, ...]``. One grouped query."""
    until = until or timezone.now()
    start = since.replace(minute=0, second=0, microsecond=0)
    rows = (
        jobs_finished_since(since, (JobStatus.COMPLETED, JobStatus.FAILED))
        .annotate(hour=TruncHour("completed_at"))
        .values_list("hour", "status")
        .annotate(n=Count("pk"))
    )
    counts = {(hour, status): n for hour, status, n in rows}
    hours = int((until - start).total_seconds() // 3600) + 1
    outcomes = []
    for index in range(hours):
        hour = start + timedelta(hours=index)
        outcomes.append({"hour": hour, **{status: counts.get((hour, status), 0) for status in FINISHED}})
    return outcomes


def failing_pipelines(*, since, limit: int = 5) -> list[dict]:
    """The pipeline versions with the most failed jobs since ``since``, with their completed jobs
    for the failure rate: ``[{"pipeline_id", "pipeline_version_id", "name", "version", "failed", "finished"}]``."""
    failed = Count("pk", filter=Q(status=JobStatus.FAILED))
    rows = (
        jobs_finished_since(since, FINISHED)
        .values("pipeline_id", "pipeline_version_id", "pipeline__name", "pipeline_version__version")
        .annotate(failed=failed, finished=Count("pk"))
        .filter(failed__gt=0)
        .order_by("-failed", "pipeline__name", "pipeline_version__version")[:limit]
    )
    return [
        {"pipeline_id": row["pipeline_id"], "pipeline_version_id": row["pipeline_version_id"],
         "name": row["pipeline__name"], "version": row["pipeline_version__version"], "failed": row["failed"],
         "finished": row["finished"]}
        for row in rows
    ]  # fmt: skip


def failing_stages(*, since, limit: int = 5) -> list[dict]:
    """The stages jobs failed in most since ``since`` (the stage is in the job's ``error``), each
    with its error codes, most frequent first: ``[{"stage", "failed", "codes": [(code, n), ...]}]``
    (``stage`` None: the job failed outside any stage, e.g. its worker was lost before it began)."""
    rows = (
        jobs_finished_since(since, (JobStatus.FAILED,))
        .annotate(stage=KT("error__stage"), code=KT("error__code"))
        .values_list("stage", "code")
        .annotate(n=Count("pk"))
        .order_by("-n")[:200]  # (stage, code) pairs: a few dozen in practice
    )
    stages: dict = {}
    for stage, code, n in rows:
        entry = stages.setdefault(stage, {"stage": stage, "failed": 0, "codes": []})
        entry["failed"] += n
        entry["codes"].append((code, n))
    ranked = sorted(stages.values(), key=lambda entry: (-entry["failed"], entry["stage"] is None, entry["stage"] or ""))
    return ranked[:limit]
