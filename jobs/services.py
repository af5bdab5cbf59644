"""Every write of Job, JobFile and JobResult rows. A status change is checked against the state
machine and recorded in the timeline in the same transaction: ``job_transition`` (under a row
lock) for the API, the admin and the reaper; ``_finish`` (fenced by the claim's attempt number,
below) for the worker. Each change is announced (``jobs.announcements``: the webhooks' outbox rows
are written then) in its transaction, once its writes are done. RQ is told after commit."""

import copy
import hashlib
import itertools
import json
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.files.base import ContentFile, File
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, connection, transaction
from django.db.models import Case, Exists, F, OuterRef, Q, Value, When
from django.utils import timezone

from accounts.principal import Principal
from jobs import announcements, queueing
from jobs.models import (
    TERMINAL_STATUSES,
    TRANSITIONS,
    FileStatus,
    Job,
    JobEvent,
    JobFile,
    JobResult,
    JobStatus,
    SourceType,
)
from jobs.uploads import Upload, inspect
from pipeline_project import metrics
from pipeline_project.lib import sql
from pipeline_project.lib.batches import in_locked_batches
from pipeline_project.lib.errors import ConflictError, InvalidStateError, NotFoundError
from pipeline_project.lib.storage import display_name, upload_path
from pipelines.models import Pipeline, PipelineVersion
from pipelines.selectors import pipeline_for_job
from pipelines.services import cached_default_pipeline_version, default_pipeline_version

logger = logging.getLogger(__name__)

IDEMPOTENCY_WINDOW = timedelta(hours=24)
SYSTEM = "system"


def job_transition(*, job_id, to: str, actor: str, message: str = "", **changes) -> Job:
    """Moves the job to ``to`` (409 ``invalid_state`` if the state machine forbids it),
    applying ``changes`` and recording a JobEvent, under a row lock."""
    with transaction.atomic():
        job = transition_locked(Job.objects.select_for_update().get(pk=job_id), to, actor, message, **changes)
        announcements.status_changed(job, to)
    return job


def transition_locked(job: Job, to: str, actor: str, message: str = "", **changes) -> Job:
    """``job_transition`` for a row the caller has already locked in its transaction; the caller
    announces the change (``announcements.status_changed``) once its transaction's writes are done."""
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
    if to in TERMINAL_STATUSES:
        metrics.job_finished(to)  # counted once the transaction commits
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
    content = None
    if source_type == SourceType.TEXT:  # its one file: the job row is written with that file's fields
        content = (text or "").encode()
        file_name, file_size, mime_type = file_name or "input.txt", len(content), "text/plain"
    job = _new_job(
        principal,
        save=False,
        status=JobStatus.QUEUED if start else JobStatus.DRAFT,
        source_type=source_type,
        source_uri=source_uri,
        file_name=file_name,
        file_size=file_size,
        mime_type=mime_type,
        mode=mode,
        priority=priority,
        metadata=metadata or {},
        webhook_url=webhook_url,
        idempotency_key=idempotency_key or None,
        request_hash=fingerprint,
    )
    event = JobEvent(job=job, to_status=job.status, actor=principal.actor, message="created")
    # Usually nobody listens, and the job is one statement with no transaction (below); if some
    # subscriber or the job's webhook_url does, the job and their deliveries commit together.
    announcement = announcements.created([job])
    try:
        with _stored_files() as stored, transaction.atomic() if announcement else nullcontext():
            job_file = None
            if content is not None:
                job_file = _store(job, ContentFile(content), stored, name="input.txt", mime_type="text/plain",
                                  sha256=hashlib.sha256(content).hexdigest(), save=False)  # fmt: skip
            # Usually the default pipeline's version is in hand: one statement, that checks it is current.
            cached = None
            if pipeline_id is None:
                cached = cached_default_pipeline_version(organization=principal.organization)
            created = False
            if cached is not None:
                _use_pipeline(job, cached)
                # In a caller's transaction, a savepoint: a failed statement (a duplicate key) leaves it usable.
                with transaction.atomic() if connection.in_atomic_block else nullcontext():
                    created = _insert_job(job, job_file, event, if_current=cached)
            if not created:
                with transaction.atomic():  # the version read (a default pipeline created on first use) and the rows
                    _use_pipeline(job, _pipeline_version(principal, pipeline_id))
                    _insert_job(job, job_file, event)
            announcement.record()
    except IntegrityError:
        if idempotency_key:  # a concurrent request with the same key won the race
            existing = _idempotent_job(principal, idempotency_key, fingerprint)
            if existing is not None:
                return existing, False
        raise
    _enqueue_queued([job])
    metrics.jobs_created([job])
    return job, True


def _insert_job(job: Job, job_file: JobFile | None, event: JobEvent, *,
                if_current: PipelineVersion | None = None) -> bool:  # fmt: skip
    """Inserts a new job, its input file if any and its first timeline entry, on PostgreSQL in one
    statement: atomic without a transaction block, one round trip. With ``if_current``, only if that
    pipeline version is still its pipeline's current one; False, and nothing inserted, if not."""
    if connection.vendor != "postgresql":  # SQLite (make run) has no INSERT inside WITH: the same rows in turn
        with transaction.atomic():
            if if_current is not None:
                with connection.cursor() as cursor:
                    cursor.execute(*_current(if_current))
                    if cursor.fetchone() is None:
                        return False
            for row in (job, job_file, event):
                if row is not None:
                    row.save(force_insert=True)
        return True
    quote = connection.ops.quote_name
    current, params = _current(if_current) if if_current is not None else ("SELECT 1", [])

    def insert(row, source: str) -> str:  # its parameters appended to ``params``, in the statement's order
        columns, values = sql.insert_values(row)
        params.extend(values)
        placeholders = ", ".join(["%s"] * len(values))
        return f"INSERT INTO {quote(row._meta.db_table)} ({columns}) SELECT {placeholders} FROM {source}"

    parts = [f"current AS ({current})", f"job AS ({insert(job, 'current')} RETURNING 1)"]
    if job_file is not None:
        parts.append(f"file AS ({insert(job_file, 'job')})")
    statement = f"WITH {', '.join(parts)} {insert(event, 'job')}"
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        inserted = cursor.rowcount == 1
    if inserted:
        sql.mark_saved(job, *([job_file] if job_file is not None else []))
    return inserted


def _current(version: PipelineVersion) -> tuple[str, list]:
    """A query answering one row while ``version`` is its pipeline's current version, and its parameters."""
    table = connection.ops.quote_name(Pipeline._meta.db_table)
    pipeline_id = Pipeline._meta.pk.get_db_prep_value(version.pipeline_id, connection)
    return f"SELECT 1 FROM {table} WHERE id = %s AND version = %s", [pipeline_id, version.version]


def _new_job(principal: Principal, *, save: bool = True, **fields) -> Job:
    """A job of the caller's organization, created by the caller: inserted, or only built when
    not ``save`` (then insert it with others: ``bulk_create``)."""
    job = Job(
        organization=principal.organization, created_by=principal.user, created_by_key=principal.api_key, **fields
    )
    if save:
        job.save(force_insert=True)
    return job


def _announce(job: Job, *, actor: str, message: str) -> None:
    """A new job's first timeline entry; a queued one goes onto RQ once the transaction commits."""
    _announce_all([job], actor=actor, message=message)


def _announce_all(jobs: list[Job], *, actor: str, message: str, cached: PipelineVersion | None = None) -> None:
    """New jobs' first timeline entries, in one statement; the queued ones go onto RQ (in one
    round trip) once the transaction commits. (``job_create`` writes its job's entry with the
    job, in ``_insert_job``, then calls ``_enqueue_queued`` as this does.)

    ``cached``: the jobs run the default pipeline at this version, as cached by
    ``default_pipeline_version(cached=True)``. The statement inserting the entries checks that it
    is still current; if it is not, the jobs are moved to the current version first."""
    now = timezone.now()
    events = [JobEvent(job=job, to_status=job.status, actor=actor, message=message, created_at=now) for job in jobs]
    if cached is None:
        JobEvent.objects.bulk_create(events)
    elif not _insert_events_if_current(events, cached):
        current = default_pipeline_version(organization=jobs[0].organization)
        Job.objects.filter(pk__in=[job.pk for job in jobs]).update(**_pipeline_fields(current))
        for job in jobs:
            _use_pipeline(job, current)
        JobEvent.objects.bulk_create(events)
    announcements.created(jobs).record()
    _enqueue_queued(jobs)
    metrics.jobs_created(jobs)  # counted once the transaction commits


def _enqueue_queued(jobs: list[Job]) -> None:
    queueing.enqueue_many_on_commit((job.id, job.queue_name) for job in jobs if job.status == JobStatus.QUEUED)


_EVENT_FIELDS = ("job", "from_status", "to_status", "actor", "message", "created_at")


def _insert_events_if_current(events: list[JobEvent], version: PipelineVersion) -> bool:
    """Inserts ``events`` if ``version`` is still the current version of its pipeline, in one
    statement (so the check costs no round trip). False, and nothing inserted, if it is not."""
    fields = [JobEvent._meta.get_field(name) for name in _EVENT_FIELDS]
    quote = connection.ops.quote_name
    row = f"({', '.join(['%s'] * len(fields))})"
    current, current_params = _current(version)
    statement = (
        f"INSERT INTO {quote(JobEvent._meta.db_table)} ({', '.join(quote(field.column) for field in fields)}) "
        f"SELECT * FROM (VALUES {', '.join([row] * len(events))}) AS new WHERE EXISTS ({current})"
    )
    params = [field.get_db_prep_save(getattr(event, field.attname), connection) for event in events for field in fields]
    params += current_params
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.rowcount == len(events)


def _pipeline_version(
    principal: Principal, pipeline_id: uuid.UUID | None, *, within: str = "", cached: bool = False
) -> PipelineVersion:
    """The version a new job runs: the current one of ``pipeline_id`` if it is an active pipeline
    of the caller's organization (else 404 naming the field, ``<within>.pipeline_id`` inside another), or of the
    organization's default pipeline when None. Call it inside the job's transaction: a default
    pipeline created on first use then rolls back with a job that fails. ``cached``: the default
    pipeline's version may come from this process's cache, for ``_announce_all`` to check."""
    if pipeline_id is None:
        return default_pipeline_version(organization=principal.organization, cached=cached)
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
    # A copy: the version may be shared (cached), the job's snapshot is its own.
    return {"pipeline": version.pipeline, "pipeline_version": version, "config": copy.deepcopy(version.config)}


def _use_pipeline(job: Job, version: PipelineVersion | None) -> None:
    for name, value in _pipeline_fields(version).items():
        setattr(job, name, value)


def _idempotent_job(principal: Principal, key: str, fingerprint: str) -> Job | None:
    job = (
        Job.objects.select_related("pipeline", "pipeline_version")  # what the answer shows
        .filter(organization=principal.organization, idempotency_key=key)
        .first()
    )
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
           result: dict | None = None, save: bool = True) -> JobFile:  # fmt: skip
    """Saves ``file`` to storage (its name added to ``stored``) and inserts its JobFile (only
    builds it when not ``save``: then insert it with others, ``bulk_create``)."""
    storage_name = default_storage.save(upload_path(job.organization_id, job.id, name), file)
    stored.append(storage_name)
    file.close()  # an upload's temporary file was moved into storage: nothing (no finalizer) may unlink it again
    job_file = JobFile.for_stored(job=job, storage_name=storage_name, name=display_name(name), size=file.size,
                                  mime_type=mime_type, sha256=sha256, result=result)  # fmt: skip
    if save:
        job_file.save(force_insert=True)
    return job_file


def _store_upload(job: Job, upload: Upload, stored: list[str], *, record_detection: bool,
                  save: bool = True) -> JobFile:  # fmt: skip
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
        save=save,
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
        announcements.status_changed(job, JobStatus.QUEUED)
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
        announcements.status_changed(job, becomes)
        if previous == JobStatus.PROCESSING:
            queueing.stop_on_commit(job.pk)
        elif previous == JobStatus.QUEUED:
            queueing.dequeue_on_commit(job.id, job.queue_name)
    return job


def job_retry(*, job: Job, principal: Principal, overrides: dict, actor: str | None = None) -> Job:
    """A new queued job with the same source, files and configuration (``overrides`` applied:
    priority, mode, metadata, pipeline_id, None meaning the default pipeline), linked to the
    original. Only failed or cancelled jobs, whose stored inputs are still there (409
    ``inputs_deleted`` once ``cleanup_uploads`` took them, UPLOAD_RETENTION after the job ended: its
    files are read under the job's row lock, which the cleanup takes too). ``actor`` names who asked
    in the timeline when it is not the principal (staff in the admin)."""
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
        files = list(original.files.all())
        _ensure_inputs_kept(files)
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
            for file in files
        )
        _announce(retry, actor=actor or principal.actor, message=f"retry of {original.id}")
    return retry


def _ensure_inputs_kept(files: list[JobFile]) -> None:
    """409 ``inputs_deleted`` if any of a job's files let go of its stored object (``cleanup_uploads``)."""
    deleted = [file.storage_deleted_at for file in files if file.storage_deleted_at is not None]
    if deleted:
        days = settings.UPLOAD_RETENTION / 86400
        raise ConflictError(
            f"This job's stored input files were deleted {days:g} days after it ended (UPLOAD_RETENTION), so it "
            "cannot be retried; submit the documents again as a new job.",
            code="inputs_deleted",
            details={"deleted_at": min(deleted).isoformat()},
        )


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
    if anything fails, the rows roll back and every file already stored is deleted. The jobs,
    their files and their events are inserted in one statement each, whatever their number."""
    uploads = [inspect(file) for file in files]  # before anything is written
    with _stored_files() as stored, transaction.atomic():
        version = _pipeline_version(principal, pipeline_id, cached=True)
        jobs = [
            _new_job(
                principal,
                save=False,
                status=JobStatus.QUEUED,
                source_type=SourceType.UPLOAD,
                file_name=display_name(upload.file.name),
                file_size=upload.file.size,
                mime_type=upload.detection.mime_type,
                mode=mode,
                priority=priority,
                **_pipeline_fields(version),
                metadata=metadata or {},
            )
            for upload in uploads
        ]
        Job.objects.bulk_create(jobs)
        JobFile.objects.bulk_create(
            _store_upload(job, upload, stored, record_detection=record_detection, save=False)
            for job, upload in zip(jobs, uploads, strict=True)
        )
        _announce_all(jobs, actor=principal.actor, message="uploaded", cached=version if pipeline_id is None else None)
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


def job_results_expirable(*, now=None):
    """Results past their ``expires_at``."""
    return JobResult.objects.filter(expires_at__lte=now or timezone.now())


def job_results_expire(*, dry_run: bool = False, batch_size: int = 500, progress=None) -> int:
    """Deletes results past their ``expires_at`` (and their stored texts, after commit), ``batch_size``
    per transaction; returns how many (with ``dry_run``: how many it would, changing nothing). Each
    batch is announced per organization (``job.results_expired``: the audit trail's system action).
    Safe to run twice at once: a batch is claimed with ``FOR UPDATE SKIP LOCKED``. ``progress(n)``
    after each batch."""
    cutoff = timezone.now()
    if dry_run:
        return job_results_expirable(now=cutoff).count()

    def expire(batch: list[tuple]) -> None:
        JobResult.objects.filter(job_id__in=[job_id for job_id, *_ in batch]).delete()
        stored = [uri for _, text_uri, markdown_uri, _ in batch for uri in (text_uri, markdown_uri) if uri]
        transaction.on_commit(lambda: _delete_stored(stored))
        by_organization = {}
        for job_id, _, _, organization_id in batch:
            by_organization.setdefault(organization_id, []).append(job_id)
        announcements.results_expired(by_organization)

    return in_locked_batches(job_results_expirable(now=cutoff).order_by("expires_at"),
                             ["job_id", "output_uri", "markdown_uri", "job__organization_id"], expire,
                             batch_size=batch_size, progress=progress)  # fmt: skip


# --- Stored uploads past UPLOAD_RETENTION (cleanup_uploads) ------------------------------------
# A job's input files are kept while anything may still need them: until UPLOAD_RETENTION after it
# ended failed or cancelled (it may be retried), or after its result expired (completed). Retries
# share stored objects with their original (``job_retry``), so a file only *lets go* of its object
# (``storage_deleted_at``); the object is deleted once no file holds it any more. Order: the rows
# are marked and committed first, the objects deleted after: a crash in between leaves objects
# no file holds, which the orphan sweep below deletes on a later run. Never the other way round:
# a row pointing at a deleted object would make a job that fails later.

UPLOADS_PREFIX = "uploads"  # pipeline_project.lib.storage.upload_path; results/ is left alone
ORPHAN_GRACE = timedelta(days=1)  # an upload's object is stored just before its row commits
_LOOKUP_CHUNK = 1000  # names per IN (...) lookup


@dataclass
class UploadsCleanup:
    jobs: int = 0  # jobs whose files let go of their stored inputs
    files: int = 0  # stored objects of those jobs deleted (shared ones count once)
    orphans: int = 0  # stored objects no file refers to, deleted


def _inputs_expired(cutoff, prefix: str = "") -> Q:
    """Jobs whose inputs nothing needs: ended before ``cutoff`` failed or cancelled, or completed
    with their result expired (deleted)."""
    return Q(**{f"{prefix}completed_at__lt": cutoff}) & (
        Q(**{f"{prefix}status__in": (JobStatus.FAILED, JobStatus.CANCELLED)})
        | Q(**{f"{prefix}status": JobStatus.COMPLETED, f"{prefix}result__isnull": True})
    )


def _inputs_needed(cutoff, prefix: str = "") -> Q:
    """The other jobs (``_inputs_expired``'s complement): drafts, queued and running ones, those
    ended since ``cutoff``, completed ones with a result."""
    return (
        ~Q(**{f"{prefix}status__in": TERMINAL_STATUSES})
        | Q(**{f"{prefix}completed_at__isnull": True})
        | Q(**{f"{prefix}completed_at__gte": cutoff})
        | Q(**{f"{prefix}status": JobStatus.COMPLETED, f"{prefix}result__isnull": False})
    )


def _unneeded_files(cutoff):
    """Files still holding a stored object that no job needing its inputs holds too."""
    needed = JobFile.objects.filter(_inputs_needed(cutoff, "job__"), storage_name=OuterRef("storage_name"))
    return JobFile.objects.filter(storage_deleted_at__isnull=True).filter(~Exists(needed))


def job_uploads_expired(*, now=None):
    """Jobs past UPLOAD_RETENTION with stored inputs to delete (``job_uploads_delete``)."""
    cutoff = (now or timezone.now()) - timedelta(seconds=settings.UPLOAD_RETENTION)
    return Job.objects.filter(_inputs_expired(cutoff), Exists(_unneeded_files(cutoff).filter(job_id=OuterRef("pk"))))


def job_uploads_delete(*, dry_run: bool = False, batch_size: int = 200, progress=None) -> UploadsCleanup:
    """Deletes the stored inputs of jobs past UPLOAD_RETENTION (``_inputs_expired``) that no other
    job shares, then the stored uploads no file refers to, older than ``ORPHAN_GRACE``. Jobs are
    claimed ``batch_size`` at a time (``FOR UPDATE SKIP LOCKED``: two runs at once never take the
    same job, and ``job_retry`` of a job being cleaned waits, then answers 409 ``inputs_deleted``);
    each batch is announced per organization (``job.uploads_deleted``), the orphans once per run
    (``job.orphan_uploads_deleted``). With ``dry_run``, says how many it would, changing nothing.
    Idempotent: files let go are marked (``storage_deleted_at``). ``progress(n)`` after each batch."""
    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.UPLOAD_RETENTION)
    outcome = UploadsCleanup()
    if dry_run:
        outcome.jobs = job_uploads_expired(now=now).count()
        expired = _unneeded_files(cutoff).filter(_inputs_expired(cutoff, "job__"))
        outcome.files = expired.values("storage_name").distinct().count()
        outcome.orphans = sum(len(names) for names in _orphans(now - ORPHAN_GRACE, batch_size, prune=False))
        return outcome

    def release(batch: list[tuple]) -> None:
        organization_of = dict(batch)
        # Read now, under the jobs' locks (a retry of one of them committed meanwhile holds its objects).
        files = list(_unneeded_files(cutoff).filter(job_id__in=list(organization_of))
                     .values_list("pk", "job_id", "storage_name"))  # fmt: skip
        for pks in _chunks([pk for pk, _, _ in files], _LOOKUP_CHUNK):
            JobFile.objects.filter(pk__in=pks).update(storage_deleted_at=now)
        jobs, files_of = {}, {}
        for _, job_id, _ in files:
            organization_id = organization_of[job_id]
            jobs.setdefault(organization_id, {})[job_id] = None
            files_of[organization_id] = files_of.get(organization_id, 0) + 1
        announcements.uploads_deleted({organization_id: list(ids) for organization_id, ids in jobs.items()},
                                      files=files_of)  # fmt: skip
        outcome.jobs += sum(len(ids) for ids in jobs.values())
        names = sorted({name for _, _, name in files})
        transaction.on_commit(lambda: setattr(outcome, "files", outcome.files + _delete_unheld(names)))

    in_locked_batches(job_uploads_expired(now=now).order_by(), ["pk", "organization_id"], release,
                      batch_size=batch_size, progress=progress)  # fmt: skip
    orphans = []
    for names in _orphans(now - ORPHAN_GRACE, batch_size, prune=True):
        _delete_stored(names)
        orphans.extend(names)
    if orphans:
        with transaction.atomic():
            announcements.orphan_uploads_deleted(orphans)
    outcome.orphans = len(orphans)
    return outcome


def _delete_unheld(names: list[str]) -> int:
    """Deletes the stored objects among ``names`` that no file holds any more; returns how many."""
    count = 0
    for chunk in _chunks(names, _LOOKUP_CHUNK):
        held = set(JobFile.objects.filter(storage_name__in=chunk, storage_deleted_at__isnull=True)
                   .values_list("storage_name", flat=True))  # fmt: skip
        unheld = [name for name in chunk if name not in held]
        _delete_stored(unheld)
        count += len(unheld)
    return count


def _orphans(older_than, batch_size: int, *, prune: bool) -> Iterator[list[str]]:
    """The stored uploads no file holds, last written before ``older_than``, a batch at a time (the
    storage is walked directory by directory; its names are looked up ``batch_size`` at a time).
    With ``prune``, the empty upload directories older than that are removed on the way."""
    for chunk in _chunks(_walk(UPLOADS_PREFIX, older_than if prune else None), batch_size):
        held = set(JobFile.objects.filter(storage_name__in=chunk, storage_deleted_at__isnull=True)
                   .values_list("storage_name", flat=True))  # fmt: skip
        names = [name for name in chunk if name not in held and _written_before(name, older_than)]
        if names:
            yield names


def _walk(directory: str, prune_before=None, depth: int = 0) -> Iterator[str]:
    """The names of the stored files under ``directory``, depth first. With ``prune_before``, empty
    directories below ``uploads/<organization>/`` last changed before it are removed (local disk:
    object stores list no empty directories)."""
    try:
        directories, files = default_storage.listdir(directory)
    except FileNotFoundError:  # none yet, or removed by another run meanwhile
        return
    for name in files:
        yield f"{directory}/{name}"
    for name in directories:
        yield from _walk(f"{directory}/{name}", prune_before, depth + 1)
    if prune_before is not None and depth >= 2 and not files and not directories:
        if _written_before(directory, prune_before):
            try:
                default_storage.delete(directory)
            except OSError:  # not empty any more
                pass


def _written_before(name: str, moment) -> bool:
    try:
        return default_storage.get_modified_time(name) < moment
    except (FileNotFoundError, NotImplementedError):
        return False


def _chunks(items, size: int) -> Iterator[list]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


# --- The worker's writes ---------------------------------------------------------------------
# A claim is fenced by its attempt number: ``job_claim`` increments ``attempts`` and every later
# write of that attempt is conditional on it (and on the status it expects). A worker whose job
# was requeued by the reaper (its heartbeats were late) or finished by someone else therefore
# writes nothing: its write finds no row and raises ``ClaimLost``. A job cancelled meanwhile
# (``cancelling``) raises ``CancelRequested``: the worker then finishes the cancellation.


class ClaimLost(Exception):
    """This attempt no longer owns the job: stop quietly, write nothing more."""


class CancelRequested(Exception):
    """The job is ``cancelling``: drop the work and finish the cancellation (``job_finish_cancelled``)."""


_CLAIM_FIELDS = [field.attname for field in Job._meta.concrete_fields]


def job_claim(job_id, *, worker: str) -> tuple[Job, list[JobFile]] | None:
    """Moves a queued job to processing for ``worker`` in one statement, with its timeline event
    and its files (marked processing and returned) in the same transaction. The job's
    ``attempts`` is the claim's fencing token. None if the job is not queued (a duplicate RQ
    message, or cancelled meanwhile)."""
    now, pk = timezone.now(), Job._meta.pk.get_db_prep_value(job_id, connection)
    quote = connection.ops.quote_name
    with transaction.atomic():
        row = sql.fetch_one(
            f"UPDATE {quote(Job._meta.db_table)} SET status = %s, attempts = attempts + 1, locked_by = %s,"
            " locked_at = %s, heartbeat_at = %s, started_at = COALESCE(started_at, %s), updated_at = %s,"
            " progress_percent = 0, progress_stage = '', stages_done = 0, error = NULL"
            f" WHERE id = %s AND status = %s RETURNING {sql.columns(quote(Job._meta.db_table), Job, _CLAIM_FIELDS)}",
            [JobStatus.PROCESSING, worker, now, now, now, now, pk, JobStatus.QUEUED],
            (Job, _CLAIM_FIELDS),
        )
        if row is None:
            return None
        job = row[0]
        JobEvent.objects.create(job=job, from_status=JobStatus.QUEUED, to_status=JobStatus.PROCESSING, actor=SYSTEM,
                                message=f"claimed by {worker}")  # fmt: skip
        files = JobFile.objects.raw(
            f"UPDATE {quote(JobFile._meta.db_table)} SET status = %s, updated_at = %s WHERE job_id = %s RETURNING *",
            [FileStatus.PROCESSING, now, pk],
        )
        files = sorted(files, key=lambda job_file: (job_file.created_at, str(job_file.id)))  # the files' order
        announcements.status_changed(job, JobStatus.PROCESSING)
    return job, files


def _claimed(job: Job, status: str = JobStatus.PROCESSING):
    """The job's row if this claim (``job.attempts``) still owns it in ``status``."""
    return Job.objects.filter(pk=job.pk, attempts=job.attempts, status=status)


def _lost(job: Job) -> Exception:
    """Why a fenced write found no row: ``CancelRequested`` if this attempt's job is being
    cancelled, else ``ClaimLost``."""
    row = Job.objects.filter(pk=job.pk).values_list("status", "attempts").first()
    if row == (JobStatus.CANCELLING, job.attempts):
        return CancelRequested()
    return ClaimLost(f"job {job.pk}: attempt {job.attempts} lost its claim (now {row})")


def job_progress(job: Job, *, done: int, total: int, stage: str) -> None:
    """Records progress and a heartbeat (fenced)."""
    updated = _claimed(job).update(
        progress_percent=int(100 * done / total) if total else 0,
        progress_stage=stage,
        stages_done=done,
        stages_total=total,
        heartbeat_at=timezone.now(),
    )
    if not updated:
        raise _lost(job)


def job_heartbeat(job: Job) -> None:
    """Tells the reaper this attempt is alive (fenced)."""
    if not _claimed(job).update(heartbeat_at=timezone.now()):
        raise _lost(job)


def job_check_claim(job: Job) -> None:
    """Raises ``CancelRequested`` or ``ClaimLost`` unless this attempt still runs the job."""
    if not _claimed(job).exists():
        raise _lost(job)


def job_input_fetched(job: Job, *, storage_name: str, name: str, size: int, mime_type: str, sha256: str,
                      result: dict) -> JobFile:  # fmt: skip
    """Records a url job's downloaded document (already in storage as ``storage_name``) as its
    input file; the stored object is deleted if the claim was lost meanwhile."""
    try:
        with transaction.atomic():
            updated = _claimed(job).update(
                file_name=Case(When(file_name="", then=Value(name)), default=F("file_name")),
                file_size=size,
                mime_type=mime_type[:127],
            )
            if not updated:
                raise _lost(job)
            job_file = JobFile.for_stored(job=job, storage_name=storage_name, name=name, size=size,
                                          mime_type=mime_type, sha256=sha256, result=result)  # fmt: skip
            job_file.status = FileStatus.PROCESSING
            job_file.save()
    except BaseException:
        _delete_stored([storage_name])
        raise
    return job_file


def _finish(job: Job, to: str, message: str, *, status: str = JobStatus.PROCESSING, **changes) -> None:
    """The fenced status change of a claimed job (``status`` -> ``to``, a move the state machine
    allows) and its timeline event; call it first in the finishing transaction, and announce the
    change (``announcements.status_changed``) last."""
    if to not in TRANSITIONS[status]:
        raise ValueError(f"the state machine has no move from {status} to {to}")
    now = timezone.now()
    terminal = {"completed_at": now} if to in TERMINAL_STATUSES else {}
    if not _claimed(job, status).update(status=to, updated_at=now, locked_by="", **terminal, **changes):
        raise _lost(job)
    JobEvent.objects.create(job_id=job.pk, from_status=status, to_status=to, actor=SYSTEM, message=message)
    if terminal:
        metrics.job_finished(to)  # counted once the transaction commits


def _save_files(files: list[JobFile]) -> None:
    """The final state of each processed file (set on the instances), in one statement."""
    fields = ["status", "result", "error", "completed_at", "updated_at"]
    if len(files) == 1:  # the usual case: a plain UPDATE is cheaper to build than bulk_update's CASE
        files[0].save(update_fields=fields)
    elif files:
        JobFile.objects.bulk_update(files, fields)


def job_complete(job: Job, *, files: list[JobFile], text: str, stages: int, message: str = "completed",
                 markdown: str = "", **result) -> None:  # fmt: skip
    """Completes a claimed job in one transaction: the job (fenced), its event, its result and
    its files' final states. A text (or Markdown) larger than ``RESULT_INLINE_MAX_SIZE`` goes to
    storage (and is deleted again if the transaction fails, e.g. the job was cancelled meanwhile)."""
    encoded = text.encode()
    output_uri, markdown_uri = _stored_if_large(job, encoded, "txt"), _stored_if_large(job, markdown.encode(), "md")
    try:
        with transaction.atomic():
            _finish(job, JobStatus.COMPLETED, message, progress_percent=100, progress_stage="",
                    stages_done=stages, stages_total=stages)  # fmt: skip
            JobResult.objects.create(
                job_id=job.pk,
                output_uri=output_uri,
                extracted_text="" if output_uri else text,
                text_size=len(encoded),
                markdown="" if markdown_uri else markdown,
                markdown_uri=markdown_uri,
                expires_at=timezone.now() + timedelta(seconds=settings.RESULT_RETENTION),
                **result,
            )
            _save_files(files)
            announcements.status_changed(job, JobStatus.COMPLETED)
    except BaseException:
        _delete_stored([uri for uri in (output_uri, markdown_uri) if uri])
        raise


def _stored_if_large(job: Job, data: bytes, extension: str) -> str:
    """The storage name of ``data`` saved as the job's ``results/.../text.<extension>`` when it is
    larger than ``RESULT_INLINE_MAX_SIZE``; "" when it stays inline."""
    if len(data) <= settings.RESULT_INLINE_MAX_SIZE:
        return ""
    return default_storage.save(result_path(job, extension), ContentFile(data))


def result_path(job: Job, extension: str) -> str:
    return f"results/{job.organization_id}/{job.pk}/text.{extension}"


def job_fail(job: Job, *, code: str, message: str, stage: str | None, files: list[JobFile] = ()) -> None:
    """Fails a claimed job (fenced) with ``{"code", "message", "stage"}``, saving its files' states."""
    with transaction.atomic():
        _finish(job, JobStatus.FAILED, f"{code}: {message}", error={"code": code, "message": message, "stage": stage})
        _save_files(list(files))
        announcements.status_changed(job, JobStatus.FAILED)


def job_finish_cancelled(job: Job) -> None:
    """The worker's half of a cancellation, from ``cancelling`` only (fenced): partial outputs
    are dropped and the job ends cancelled."""
    with transaction.atomic():
        _finish(job, JobStatus.CANCELLED, "cancelled while processing", status=JobStatus.CANCELLING)
        _files_back_to_pending(job.pk)
        announcements.status_changed(job, JobStatus.CANCELLED)


def job_worker_lost(*, job: Job, message: str) -> str:
    """The reaper's verdict on a locked (``select_for_update``) processing or cancelling job
    whose worker stopped sending heartbeats: cancelled if it was being cancelled, queued again
    while attempts remain (its files' partial state dropped), else failed ``worker_lost``.
    Returns the new status."""
    if job.status == JobStatus.CANCELLING:
        transition_locked(job, JobStatus.CANCELLED, SYSTEM, f"{message}; cancelled", locked_by="")
        _files_back_to_pending(job.pk)
    elif job.attempts >= job.max_attempts:
        text = f"{message} on attempt {job.attempts} of {job.max_attempts}."
        error = {"code": "worker_lost", "message": text, "stage": job.progress_stage or None}
        transition_locked(job, JobStatus.FAILED, SYSTEM, text, locked_by="", error=error)
        JobFile.objects.filter(job_id=job.pk, status=FileStatus.PROCESSING).update(
            status=FileStatus.FAILED, error=text, completed_at=timezone.now()
        )
    else:
        transition_locked(job, JobStatus.QUEUED, SYSTEM, f"{message}; requeued", locked_by="", locked_at=None)
        _files_back_to_pending(job.pk)
        queueing.requeue_on_commit(job.pk, job.queue_name)
    announcements.status_changed(job, job.status)
    announcements.worker_lost(job, message=message)
    return job.status


def _files_back_to_pending(job_id) -> None:
    """A job's files as before processing: their stage records dropped, what was recorded on
    arrival (type detection, the download) kept."""
    files = list(JobFile.objects.filter(job_id=job_id).exclude(status=FileStatus.PENDING))
    for job_file in files:
        kept = {key: value for key, value in (job_file.result or {}).items() if key not in ("stages", "cache")}
        job_file.status, job_file.result, job_file.error = FileStatus.PENDING, kept or None, ""
        job_file.completed_at = None
    JobFile.objects.bulk_update(files, ["status", "result", "error", "completed_at"])
