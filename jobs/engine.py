"""The processing engine: what a worker does with a job (see DESIGN.md, "Processing model").

1. Claim: only a ``queued`` row can be claimed (``SELECT ... FOR UPDATE SKIP LOCKED``), so a
   duplicate RQ message, or a job cancelled meanwhile, finds nothing to do.
2. Run the job's pipeline snapshot on each of its files, stage by stage: progress and
   heartbeat after each stage (and every few seconds during a long one), cancellation checked
   between stages, transient errors retried with exponential backoff.
3. Save the result, set the final status, record the timeline.
"""

import functools
import hashlib
import logging
import os
import secrets
import socket
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.core.files.base import ContentFile, File
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.db.models import Count, F
from django.utils import timezone

from jobs.models import FileStatus, Job, JobFile, JobResult, JobStatus, SourceType
from jobs.services import SYSTEM, job_transition, transition_locked
from pipeline_project.lib.errors import InvalidStateError
from pipeline_project.lib.storage import display_name, upload_path
from pipelines.detection import HEAD_SIZE, detect
from pipelines.fetch import fetch
from pipelines.stages import REGISTRY, StageContext, StageError
from pipelines.stages.fetch import limits as fetch_limits
from pipelines.validation import DEFAULT_CONFIG, normalized, stage_spec

logger = logging.getLogger(__name__)

HEARTBEAT_INTERVAL = 10  # seconds, well inside JOB_HEARTBEAT_TIMEOUT
_BULKY_OUTPUTS = ("text", "pages")  # kept in the job result, not in each file's stage record


class Cancelled(Exception):
    pass


@functools.cache
def worker_name() -> str:
    """An opaque id for this process (job timelines are shown to API clients: no host name, no pid).

    Random, so it reveals nothing; logged once with the host and pid, for operators.
    """
    name = f"w-{secrets.token_hex(6)}"
    logger.info("this process claims jobs as %s (host %s, pid %d)", name, socket.gethostname(), os.getpid())
    return name


def job_claim(job_id, *, worker: str) -> Job | None:
    """Moves a queued job to processing for this worker; None if it is not queued any more."""
    with transaction.atomic():
        job = Job.objects.select_for_update(skip_locked=True).filter(pk=job_id, status=JobStatus.QUEUED).first()
        if job is None:
            return None
        now = timezone.now()
        return transition_locked(
            job,
            JobStatus.PROCESSING,
            actor=SYSTEM,
            message=f"claimed by {worker}",
            attempts=job.attempts + 1,
            locked_by=worker,
            locked_at=now,
            heartbeat_at=now,
            started_at=job.started_at or now,
            progress_percent=0,
            progress_stage="",
            stages_done=0,
            error=None,
        )


def job_process(job_id, *, worker: str | None = None) -> str | None:
    """Runs one job to its end; returns its final status (None if there was nothing to claim)."""
    worker = worker or worker_name()
    job = job_claim(job_id, worker=worker)
    if job is None:
        logger.info("job %s: nothing to claim (not queued)", job_id)
        return None
    try:
        return _execute(job)
    except InvalidStateError:  # cancelled while we were finishing it: the cancellation wins
        _finish_cancelled(job)
        return JobStatus.CANCELLED


def _execute(job: Job) -> str:
    started = time.monotonic()
    with _Heartbeat(job.pk):
        try:
            stages, files = _inputs(job)
            source = _cached(job, files)
            if source is not None:
                _finish_from_cache(job, files[0], source, elapsed_ms=int((time.monotonic() - started) * 1000))
                return JobStatus.COMPLETED
            outputs = _run(job, stages, files)
        except Cancelled:
            _finish_cancelled(job)
            return JobStatus.CANCELLED
        except StageError as error:
            _finish_failed(job, error.code, error.message, error.stage)
            return JobStatus.FAILED
        except InvalidStateError:
            raise
        except Exception as error:  # a bug, not the document's fault: recorded, logged, not retried
            logger.exception("job %s: unexpected error", job.pk)
            _finish_failed(job, "internal_error", f"Unexpected error: {type(error).__name__}.", None)
            return JobStatus.FAILED
    _finish_completed(job, outputs, elapsed_ms=int((time.monotonic() - started) * 1000))
    return JobStatus.COMPLETED


def _inputs(job: Job) -> tuple[list[dict], list[JobFile]]:
    """The stages to run on each document, and the documents (a url job's is fetched first)."""
    stages = normalized(job.config or DEFAULT_CONFIG)["stages"]
    fetch_spec = stages[0] if stages and stages[0]["name"] == "fetch" else None
    stages = [spec for spec in stages if spec["name"] != "fetch"]
    files = list(job.files.all())
    if not files and job.source_type == SourceType.URL:
        _progress(job.pk, 0, 1, "fetch")
        files = [_fetch_input(job, fetch_spec or stage_spec("fetch"))]
    if not files:
        raise StageError("no_input", "The job has no document to process.")
    return stages, files


def _cached(job: Job, files: list[JobFile]) -> JobResult | None:
    """The content-hash cache: the result of a completed one-document job of the same
    organization that ran the same pipeline version on the same bytes (sha256)."""
    if len(files) != 1 or job.pipeline_version_id is None:
        return None
    candidates = (
        JobResult.objects.annotate(files=Count("job__files"))  # before the filter: counts every file of the job
        .filter(
            job__organization_id=job.organization_id,
            job__pipeline_version_id=job.pipeline_version_id,
            job__status=JobStatus.COMPLETED,
            job__files__sha256=files[0].sha256,
            files=1,
        )
        .exclude(job_id=job.pk)
        .order_by("-created_at")
    )
    return candidates.first()


def _finish_from_cache(job: Job, job_file: JobFile, source: JobResult, *, elapsed_ms: int) -> None:
    cache = {"hit": True, "source_job": str(source.job_id)}
    source_file = source.job.files.get()
    JobFile.objects.filter(pk=job_file.pk).update(
        status=FileStatus.COMPLETED,
        result={**(job_file.result or {}), **(source_file.result or {}), "cache": cache},
        completed_at=timezone.now(),
    )
    metadata = {**source.result_metadata, "cache": cache}
    for entry in metadata.get("files", []):
        entry.update(file_id=str(job_file.id), name=job_file.original_name)
    output_uri = ""
    if source.output_uri:  # a copy: each result expires on its own
        with default_storage.open(source.output_uri, "rb") as text:
            output_uri = default_storage.save(_result_path(job), File(text))
    _complete(
        job,
        output_uri=output_uri,
        message=f"cache hit: {source.job_id}",
        extracted_text=source.extracted_text,
        text_size=source.text_size,
        result_metadata=metadata,
        quality_score=source.quality_score,
        processing_time_ms=elapsed_ms,
    )


def _run(job: Job, stages: list[dict], files: list[JobFile]) -> list[tuple[JobFile, dict]]:
    total, done, results = len(stages) * len(files), 0, []
    for job_file in files:
        JobFile.objects.filter(pk=job_file.pk).update(status=FileStatus.PROCESSING)
        context = StageContext(
            file_name=job_file.original_name,
            size=job_file.size,
            open=lambda name=job_file.storage_name: default_storage.open(name, "rb"),
        )
        record = {}
        try:
            for spec in stages:
                _progress(job.pk, done, total, spec["name"])
                began, started_at = time.monotonic(), timezone.now()
                output = _run_stage(spec, context)
                context.outputs[spec["name"]] = output
                record[spec["name"]] = {
                    "started_at": started_at.isoformat(),
                    "ended_at": timezone.now().isoformat(),
                    "duration_ms": int((time.monotonic() - began) * 1000),
                    "output": {k: v for k, v in output.items() if k not in _BULKY_OUTPUTS},
                }
                done += 1
        except StageError as error:
            JobFile.objects.filter(pk=job_file.pk).update(
                status=FileStatus.FAILED,
                error=error.message,
                result={**(job_file.result or {}), "stages": record},
                completed_at=timezone.now(),
            )
            raise
        JobFile.objects.filter(pk=job_file.pk).update(
            status=FileStatus.COMPLETED,
            result={**(job_file.result or {}), "stages": record},
            completed_at=timezone.now(),
        )
        results.append((job_file, context.outputs))
    return results


def _fetch_input(job: Job, spec: dict) -> JobFile:
    """Downloads a url job's document into storage, as if it had been uploaded."""
    max_bytes, timeout = fetch_limits(spec["params"])
    download = _with_retries(
        "fetch", spec["retry"], lambda: fetch(job.source_uri, max_bytes=max_bytes, timeout=timeout)
    )
    with download.file:
        head = download.file.read(HEAD_SIZE)
        download.file.seek(0)
        digest = hashlib.sha256()
        for chunk in iter(lambda: download.file.read(1024 * 1024), b""):
            digest.update(chunk)
        download.file.seek(0)
        detected = detect(head, download.name)
        name = display_name(download.name, "download")
        storage_name = default_storage.save(upload_path(job.organization_id, job.pk, name), File(download.file))
    mime_type = detected.mime_type if detected else (download.content_type.split(";")[0] or "application/octet-stream")
    job_file = JobFile.for_stored(
        job=job,
        storage_name=storage_name,
        name=name,
        size=download.size,
        mime_type=mime_type,
        sha256=digest.hexdigest(),
        result={"fetch": {"url": download.url, "content_type": download.content_type}},
    )
    job_file.save()
    Job.objects.filter(pk=job.pk, file_name="").update(file_name=name)
    Job.objects.filter(pk=job.pk).update(file_size=download.size, mime_type=mime_type[:127])
    return job_file


def _run_stage(spec: dict, context: StageContext) -> dict:
    stage = REGISTRY[spec["name"]]
    return _with_retries(spec["name"], spec["retry"], lambda: stage.run(context, spec["params"]))


def _with_retries(name: str, retry: dict, call):
    for attempt in range(1, retry["attempts"] + 1):
        try:
            return call()
        except StageError as error:
            error.stage = name
            if not error.transient or attempt == retry["attempts"]:
                raise
            delay = retry["backoff_seconds"] * 2 ** (attempt - 1)
            logger.warning("stage %s: %s; retry %d in %.1f s", name, error.message, attempt, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def _progress(job_id, done: int, total: int, stage: str) -> None:
    """Records progress and a heartbeat; raises ``Cancelled`` if the job is no longer
    processing (it was cancelled meanwhile). One statement: it runs before every stage."""
    updated = Job.objects.filter(pk=job_id, status=JobStatus.PROCESSING).update(
        progress_percent=int(100 * done / total),
        progress_stage=stage,
        stages_done=done,
        stages_total=total,
        heartbeat_at=timezone.now(),
    )
    if not updated:
        raise Cancelled


def _finish_completed(job: Job, outputs: list[tuple[JobFile, dict]], *, elapsed_ms: int) -> None:
    texts = [files_outputs.get("extract_text", {}).get("text", "") for _, files_outputs in outputs]
    text = "\n\n".join(t for t in texts if t)
    scores = [o["quality"]["quality_score"] for _, o in outputs if "quality" in o]
    metadata = {
        "files": [
            {
                "file_id": str(job_file.id),
                "name": job_file.original_name,
                **{name: {k: v for k, v in out.items() if k not in _BULKY_OUTPUTS} for name, out in o.items()},
            }
            for job_file, o in outputs
        ]  # fmt: skip
    }
    encoded = text.encode()
    output_uri = ""
    if len(encoded) > settings.RESULT_INLINE_MAX_SIZE:
        output_uri = default_storage.save(_result_path(job), ContentFile(encoded))
    _complete(
        job,
        output_uri=output_uri,
        message="completed",
        extracted_text="" if output_uri else text,
        text_size=len(encoded),
        result_metadata=metadata,
        quality_score=sum(scores) / len(scores) if scores else None,
        processing_time_ms=elapsed_ms,
    )


def _result_path(job: Job) -> str:
    return f"results/{job.organization_id}/{job.pk}/text.txt"


def _complete(job: Job, *, output_uri: str, message: str, **result) -> None:
    """Saves the result and completes the job in one transaction; a text already written to
    storage is deleted if that fails (e.g. the job was cancelled meanwhile)."""
    try:
        with transaction.atomic():
            JobResult.objects.create(  # in the completing transaction: none can exist before
                job=job,
                output_uri=output_uri,
                expires_at=timezone.now() + timedelta(seconds=settings.RESULT_RETENTION),
                **result,
            )
            job_transition(job_id=job.pk, to=JobStatus.COMPLETED, actor=SYSTEM, message=message,
                           progress_percent=100, progress_stage="", locked_by="")  # fmt: skip
            Job.objects.filter(pk=job.pk).update(stages_done=F("stages_total"))
    except BaseException:
        if output_uri:
            default_storage.delete(output_uri)
        raise


def _finish_failed(job: Job, code: str, message: str, stage: str | None) -> None:
    job_transition(
        job_id=job.pk,
        to=JobStatus.FAILED,
        actor=SYSTEM,
        message=f"{code}: {message}",
        error={"code": code, "message": message, "stage": stage},
        locked_by="",
    )


def job_stopped(job_id) -> None:
    """RQ killed the job's work horse (stop-job, sent when it was cancelled mid-stage)."""
    job = Job.objects.filter(pk=job_id, status=JobStatus.CANCELLING).first()
    if job is not None:
        _finish_cancelled(job)


def _finish_cancelled(job: Job) -> None:
    """The worker's half of a cancellation: partial outputs are dropped, the job ends cancelled."""
    with transaction.atomic():
        JobResult.objects.filter(job=job).delete()
        JobFile.objects.filter(job=job).exclude(status=FileStatus.PENDING).update(
            status=FileStatus.PENDING, result=None, error="", completed_at=None
        )
        job_transition(job_id=job.pk, to=JobStatus.CANCELLED, actor=SYSTEM, message="cancelled while processing",
                       locked_by="")  # fmt: skip


class _Heartbeat:
    """Touches ``heartbeat_at`` every ``HEARTBEAT_INTERVAL`` seconds while a job runs, so a
    long stage is not mistaken for a dead worker."""

    def __init__(self, job_id):
        self.job_id, self.stop = job_id, threading.Event()
        self.thread = threading.Thread(target=self._beat, name=f"heartbeat-{job_id}", daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()

    def _beat(self):
        try:
            while not self.stop.wait(HEARTBEAT_INTERVAL):
                Job.objects.filter(pk=self.job_id, status=JobStatus.PROCESSING).update(heartbeat_at=timezone.now())
        finally:
            connection.close()
