"""Writes on jobs. Every status change goes through ``job_transition``: row lock, state
machine check, timeline event, all in one transaction; RQ is told after commit."""

import hashlib
import json
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.core.files.base import ContentFile, File
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.principal import Principal
from jobs import queueing
from jobs.models import TERMINAL_STATUSES, Job, JobEvent, JobFile, JobResult, JobStatus, SourceType
from jobs.uploads import Upload, inspect
from pipeline_project.lib.errors import ConflictError, InvalidStateError, NotFoundError
from pipeline_project.lib.storage import display_name, upload_path
from pipelines.models import PipelineVersion
from pipelines.selectors import pipeline_for_job
from pipelines.services import default_pipeline_version

logger = logging.getLogger(__name__)

IDEMPOTENCY_WINDOW = timedelta(hours=24)
SYSTEM = "system"


def job_transition(*, job_id, to: str, actor: str, message: str = "", **changes) -> Job:
    """Moves the job to ``to`` (409 ``invalid_state`` if the state machine forbids it),
    applying ``changes`` and recording a JobEvent, under a row lock."""
    with transaction.atomic():
        return transition_locked(Job.objects.select_for_update().get(pk=job_id), to, actor, message, **changes)


def transition_locked(job: Job, to: str, actor: str, message: str = "", **changes) -> Job:
    """``job_transition`` for a row the caller has already locked in its transaction."""
    if not job.can_transition_to(to):
        raise InvalidStateError(
            f"A {job.status} job cannot become {to}.",
            details={"status": job.status, "requested": to},
        )
    previous = job.status
    job.status = to
    for field, value in changes.items():
        setattr(job, field, value)
    fields = ["status", "updated_at", *changes]
    if to in TERMINAL_STATUSES:
        job.completed_at = timezone.now()
        fields.append("completed_at")
    job.save(update_fields=fields)
    JobEvent.objects.create(job=job, from_status=previous, to_status=to, actor=actor, message=message)
    return job


def request_hash(payload: dict) -> str:
    """A stable fingerprint of a creation request, for idempotency."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def job_create(
    *,
    principal: Principal,
    source_type: str,
    source_uri: str = "",
    text: str | None = None,
    file_name: str = "",
    file_size: int | None = None,
    mime_type: str = "",
    mode: str = "standard",
    priority: int,
    pipeline_id: uuid.UUID | None = None,
    metadata: dict | None = None,
    webhook_url: str = "",
    start: bool = True,
    idempotency_key: str | None = None,
    fingerprint: str = "",
) -> tuple[Job, bool]:
    """Creates a job (``queued``, or ``draft`` when not started) running ``pipeline_id`` (None:
    the organization's default pipeline); returns ``(job, created)``.

    With an ``idempotency_key``, the same key and ``fingerprint`` within 24 h return the
    job first created (``created`` False); the same key with another request is a 409.
    """
    if idempotency_key:
        existing = _idempotent_job(principal, idempotency_key, fingerprint)
        if existing is not None:
            return existing, False
    try:
        with _stored_files() as stored, transaction.atomic():
            job = _new_job(
                principal,
                status=JobStatus.QUEUED if start else JobStatus.DRAFT,
                source_type=source_type,
                source_uri=source_uri,
                file_name=file_name,
                file_size=file_size,
                mime_type=mime_type,
                mode=mode,
                priority=priority,
                **_pipeline_fields(_pipeline_version(principal, pipeline_id)),
                metadata=metadata or {},
                webhook_url=webhook_url,
                idempotency_key=idempotency_key or None,
                request_hash=fingerprint,
            )
            if source_type == SourceType.TEXT:
                content = (text or "").encode()
                job_file = _store(job, ContentFile(content), stored, name="input.txt", mime_type="text/plain",
                                  sha256=hashlib.sha256(content).hexdigest())  # fmt: skip
                job.file_name, job.file_size, job.mime_type = file_name or "input.txt", job_file.size, "text/plain"
                job.save(update_fields=["file_name", "file_size", "mime_type"])
            _announce(job, actor=principal.actor, message="created")
    except IntegrityError:
        if idempotency_key:  # a concurrent request with the same key won the race
            existing = _idempotent_job(principal, idempotency_key, fingerprint)
            if existing is not None:
                return existing, False
        raise
    return job, True


def _new_job(principal: Principal, **fields) -> Job:
    """Inserts a job of the caller's organization, created by the caller."""
    return Job.objects.create(
        organization=principal.organization, created_by=principal.user, created_by_key=principal.api_key, **fields
    )


def _announce(job: Job, *, actor: str, message: str) -> None:
    """A new job's first timeline entry; a queued one goes onto RQ once the transaction commits."""
    JobEvent.objects.create(job=job, to_status=job.status, actor=actor, message=message)
    if job.status == JobStatus.QUEUED:
        queueing.enqueue_on_commit(job.id, job.queue_name)


def _pipeline_version(principal: Principal, pipeline_id: uuid.UUID | None, *, within: str = "") -> PipelineVersion:
    """The version a new job runs: the current one of ``pipeline_id`` if it is an active pipeline
    of the caller's organization (else 404 naming the field, ``<within>.pipeline_id`` inside another), or of the
    organization's default pipeline when None. Call it inside the job's transaction: a default
    pipeline created on first use then rolls back with a job that fails."""
    if pipeline_id is None:
        return default_pipeline_version(organization=principal.organization)
    version = pipeline_for_job(principal=principal, pipeline_id=pipeline_id)
    if version is None:
        message = "No active pipeline of your organization has this id."
        raise NotFoundError(message, details={f"{within}.pipeline_id" if within else "pipeline_id": [message]})
    return version


def _pipeline_fields(version: PipelineVersion | None) -> dict:
    """The pipeline a job runs, as the version and a snapshot of its config (editing the
    pipeline later never changes a job already created)."""
    if version is None:
        return {"pipeline": None, "pipeline_version": None, "config": {}}
    return {"pipeline": version.pipeline, "pipeline_version": version, "config": version.config}


def _idempotent_job(principal: Principal, key: str, fingerprint: str) -> Job | None:
    job = Job.objects.filter(organization=principal.organization, idempotency_key=key).first()
    if job is None:
        return None
    if job.created_at < timezone.now() - IDEMPOTENCY_WINDOW:
        Job.objects.filter(pk=job.pk).update(idempotency_key=None)  # expired: the key is free again
        return None
    if job.request_hash != fingerprint:
        raise ConflictError(
            "This Idempotency-Key was already used with a different request.",
            code="idempotency_key_reused",
            details={"job_id": str(job.id)},
        )
    return job


def _store(job: Job, file: File, stored: list[str], *, name: str, mime_type: str, sha256: str,
           result: dict | None = None) -> JobFile:  # fmt: skip
    """Saves ``file`` to storage (its name added to ``stored``) and inserts its JobFile."""
    storage_name = default_storage.save(upload_path(job.organization_id, job.id, name), file)
    stored.append(storage_name)
    job_file = JobFile.for_stored(job=job, storage_name=storage_name, name=display_name(name), size=file.size,
                                  mime_type=mime_type, sha256=sha256, result=result)  # fmt: skip
    job_file.save()
    return job_file


def _store_upload(job: Job, upload: Upload, stored: list[str], *, record_detection: bool) -> JobFile:
    detection = upload.detection
    return _store(
        job,
        upload.file,
        stored,
        name=upload.file.name,
        mime_type=detection.mime_type,
        sha256=upload.sha256,
        result={"detection": {"mime_type": detection.mime_type, "encoding": detection.encoding}}
        if record_detection
        else None,
    )


@contextmanager
def _stored_files() -> Iterator[list[str]]:
    """A list to add the names of stored files to; if the block raises, they are deleted. Put
    it around the transaction inserting their rows: a rollback then leaves no file behind."""
    stored: list[str] = []
    try:
        yield stored
    except BaseException:
        _delete_stored(stored)
        raise


def _delete_stored(names: list[str]) -> None:
    for name in names:
        try:
            default_storage.delete(name)
        except OSError:
            logger.exception("could not delete stored file %s", name)


def job_start(*, job: Job, actor: str) -> Job:
    """draft -> queued, then onto RQ. An upload job needs at least one file (409 ``no_files``)."""
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job.pk)
        if not job.can_start():
            raise InvalidStateError(f"Only drafts can be started; this job is {job.status}.",
                                    details={"status": job.status})  # fmt: skip
        if job.source_type == SourceType.UPLOAD and not job.files.exists():
            raise ConflictError("Add at least one file before starting this job.", code="no_files")
        job = transition_locked(job, JobStatus.QUEUED, actor, "started")
        queueing.enqueue_on_commit(job.id, job.queue_name)
    return job


def job_cancel(*, job: Job, actor: str) -> Job:
    """Draft or queued jobs are cancelled at once; a processing job becomes ``cancelling``
    and its worker finishes the cancellation. Finished jobs answer 409."""
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job.pk)
        job.ensure_can_cancel()
        previous, becomes = job.status, job.status_after_cancel
        job = transition_locked(
            job, becomes, actor, "cancelled" if becomes == JobStatus.CANCELLED else "cancel requested"
        )
        if previous == JobStatus.PROCESSING:
            queueing.stop_on_commit(job.pk)
        elif previous == JobStatus.QUEUED:
            queueing.dequeue_on_commit(job.id, job.queue_name)
    return job


def job_retry(*, job: Job, principal: Principal, overrides: dict) -> Job:
    """A new queued job with the same source, files and configuration (``overrides`` applied:
    priority, mode, metadata, pipeline_id, None meaning the default pipeline), linked to the
    original. Only failed or cancelled jobs."""
    with transaction.atomic():
        # An unknown pipeline_id answers 404 whatever the job's state, as on creation.
        version = (
            _pipeline_version(principal, overrides["pipeline_id"], within="updated_config")
            if "pipeline_id" in overrides
            else None
        )
        original = (
            Job.objects.select_for_update(of=("self",)).select_related("pipeline_version__pipeline").get(pk=job.pk)
        )
        if not original.can_retry():
            raise InvalidStateError(
                f"Only failed or cancelled jobs can be retried; this one is {original.status}.",
                details={"status": original.status},
            )
        retry = _new_job(
            principal,
            status=JobStatus.QUEUED,
            source_type=original.source_type,
            source_uri=original.source_uri,
            file_name=original.file_name,
            file_size=original.file_size,
            mime_type=original.mime_type,
            mode=overrides.get("mode", original.mode),
            priority=overrides.get("priority", original.priority),
            **_pipeline_fields(version or original.pipeline_version),
            metadata=overrides.get("metadata", original.metadata),
            webhook_url=original.webhook_url,
            max_attempts=original.max_attempts,
            retried_from=original,
        )
        JobFile.objects.bulk_create(
            JobFile.for_stored(
                job=retry,
                storage_name=file.storage_name,  # the stored object is shared, not copied
                name=file.original_name,
                size=file.size,
                mime_type=file.mime_type,
                sha256=file.sha256,
            )
            for file in original.files.all()
        )
        _announce(retry, actor=principal.actor, message=f"retry of {original.id}")
    return retry


def jobs_from_uploads(
    *,
    principal: Principal,
    files: list[UploadedFile],
    priority: int,
    mode: str = "standard",
    pipeline_id: uuid.UUID | None = None,
    metadata: dict | None = None,
    record_detection: bool = False,
) -> list[Job]:
    """One queued job per received file (checked by ``inspect``: 400, 413, 415), all or nothing:
    if anything fails, the rows roll back and every file already stored is deleted."""
    uploads = [inspect(file) for file in files]  # before anything is written
    jobs = []
    with _stored_files() as stored, transaction.atomic():
        pipeline = _pipeline_fields(_pipeline_version(principal, pipeline_id))
        for upload in uploads:
            job = _new_job(
                principal,
                status=JobStatus.QUEUED,
                source_type=SourceType.UPLOAD,
                file_name=display_name(upload.file.name),
                file_size=upload.file.size,
                mime_type=upload.detection.mime_type,
                mode=mode,
                priority=priority,
                **pipeline,
                metadata=metadata or {},
            )
            _store_upload(job, upload, stored, record_detection=record_detection)
            _announce(job, actor=principal.actor, message="uploaded")
            jobs.append(job)
    return jobs


def job_files_add(*, job: Job, files: list[UploadedFile]) -> list[JobFile]:
    """Adds received files (checked by ``inspect``) to a draft (409 ``invalid_state`` otherwise;
    409 ``file_limit`` past ``JOB_MAX_FILES``). All or nothing, like ``jobs_from_uploads``."""
    uploads = [inspect(file) for file in files]  # before the row is locked
    with _stored_files() as stored, transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job.pk)
        if not job.accepts_files():
            raise InvalidStateError(f"Files can be added to drafts only; this job is {job.status}.")
        present = job.files.count()
        if present + len(uploads) > settings.JOB_MAX_FILES:
            raise ConflictError(
                f"A job holds at most {settings.JOB_MAX_FILES} files; it has {present}.",
                code="file_limit",
                details={"limit": settings.JOB_MAX_FILES, "present": present},
            )
        job_files = [_store_upload(job, upload, stored, record_detection=True) for upload in uploads]
        if not job.file_name:
            job.file_name, job.mime_type = job_files[0].original_name, job_files[0].mime_type
        job.file_size = (job.file_size or 0) + sum(job_file.size for job_file in job_files)
        job.save(update_fields=["file_name", "mime_type", "file_size", "updated_at"])
    return job_files


def job_file_delete(*, job: Job, job_file: JobFile) -> None:
    """Removes a file from a draft, and its stored object once no job refers to it."""
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job.pk)
        if not job.accepts_files():
            raise InvalidStateError(f"Files can be removed from drafts only; this job is {job.status}.")
        job_file.delete()
        job.file_size = max(0, (job.file_size or 0) - job_file.size)
        job.save(update_fields=["file_size", "updated_at"])
        if not JobFile.objects.filter(storage_name=job_file.storage_name).exists():
            transaction.on_commit(lambda: _delete_stored([job_file.storage_name]))


def job_results_expire(*, batch_size: int = 500) -> int:
    """Deletes results past their ``expires_at`` (and their stored texts); returns how many."""
    deleted = 0
    while True:
        batch = list(
            JobResult.objects.filter(expires_at__lte=timezone.now()).values_list("job_id", "output_uri")[:batch_size]
        )
        if not batch:
            return deleted
        with transaction.atomic():
            JobResult.objects.filter(job_id__in=[job_id for job_id, _ in batch]).delete()
            stored = [uri for _, uri in batch if uri]
            transaction.on_commit(lambda stored=stored: _delete_stored(stored))
        deleted += len(batch)
