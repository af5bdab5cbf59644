from django.db.models import CharField, Prefetch, Q, QuerySet, TextField
from django.db.models.functions import Cast

from accounts.principal import Principal
from jobs.models import Job, JobEvent, JobFile


def job_queryset(*, principal: Principal) -> QuerySet[Job]:
    """The caller's organization's jobs: nothing else is ever visible (others' answer 404)."""
    return Job.objects.filter(organization_id=principal.organization.pk).select_related("pipeline", "pipeline_version")


def job_detail_queryset(*, principal: Principal) -> QuerySet[Job]:
    return job_queryset(principal=principal).prefetch_related(
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


def job_events(*, job: Job) -> QuerySet[JobEvent]:
    return JobEvent.objects.filter(job=job)


def job_files(*, job: Job) -> QuerySet[JobFile]:
    return JobFile.objects.filter(job=job)
