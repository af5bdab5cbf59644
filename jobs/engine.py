"""The processing engine: what a worker does with a job (README, "Design: the engine").

1. Claim (``services.job_claim``): one statement moves a queued job to processing and bumps its
   attempt number, the claim's fencing token. A duplicate RQ message, or a job cancelled
   meanwhile, finds nothing to claim.
2. Inputs: the job's files; a url job's document is downloaded first, here in the worker.
3. Each document's stages run through ``pipelines.runner``: in a parser child of the worker's
   ``ParserPool`` under our worker class (``jobs.worker.Worker``; a crash or hang kills only the
   child), in this process under stock RQ workers.
4. Progress and heartbeats are coalesced (``_Progress``) and fenced: a cancellation is noticed
   as ``CancelRequested``, a claim lost to the reaper as ``ClaimLost`` (the attempt then stops
   quietly and writes nothing).
5. The job is completed, failed or cancelled in one transaction (``jobs.services``, the only
   writer of job rows).
"""

import functools
import hashlib
import logging
import os
import secrets
import socket
import threading
import time
from contextlib import contextmanager

from django.core.files.base import File
from django.core.files.storage import default_storage
from django.db import connection
from django.utils import timezone
from rq.timeouts import JobTimeoutException

from jobs.models import FileStatus, Job, JobFile, JobStatus, SourceType
from jobs.selectors import job_cached_source, job_cancelling, job_result_rendering
from jobs.services import (
    CancelRequested,
    ClaimLost,
    job_check_claim,
    job_claim,
    job_complete,
    job_fail,
    job_finish_cancelled,
    job_heartbeat,
    job_input_fetched,
    job_progress,
)
from pipeline_project import metrics
from pipeline_project.lib.storage import display_name, local_path, upload_path
from pipelines.detection import HEAD_SIZE, detect
from pipelines.fetch import fetch
from pipelines.isolation import ParserPool, Stopped
from pipelines.runner import Document, DocumentResult, run_document, summarize, with_retries
from pipelines.stages import StageError
from pipelines.stages.fetch import limits as fetch_limits
from pipelines.validation import DEFAULT_CONFIG, normalized, stage_spec

logger = logging.getLogger(__name__)

PROGRESS_INTERVAL = 1.0  # seconds: at most one progress write per job this often
HEARTBEAT_INTERVAL = 10  # seconds, well inside JOB_HEARTBEAT_TIMEOUT

_pool: ParserPool | None = None  # set by our worker class; None: stages run in this process


def use_parser_pool(pool: ParserPool | None) -> None:
    """Runs every document's stages in ``pool``'s child processes from now on (None: in process)."""
    global _pool
    _pool = pool


@functools.cache
def worker_name() -> str:
    """An opaque id for this process (job timelines are shown to API clients: no host name, no pid).

    Random, so it reveals nothing; logged once with the host and pid, for operators.
    """
    name = f"w-{secrets.token_hex(6)}"
    logger.info("this process claims jobs as %s (host %s, pid %d)", name, socket.gethostname(), os.getpid())
    return name


def job_process(job_id, *, worker: str | None = None) -> str | None:
    """Runs one job to its end; returns its final status (None if there was nothing to claim,
    or the claim was lost to the reaper meanwhile)."""
    claimed = job_claim(job_id, worker=worker or worker_name())
    if claimed is None:
        logger.info("job %s: nothing to claim (not queued)", job_id)
        return None
    job, files = claimed
    started = time.monotonic()
    try:
        try:
            status = _execute(job, files)
        except CancelRequested:
            job_finish_cancelled(job)
            status = JobStatus.CANCELLED
    except ClaimLost as lost:
        logger.warning("%s; this attempt stops without writing", lost)
        return None
    metrics.job_duration(time.monotonic() - started)
    return status


def job_stopped(job_id) -> None:
    """A stock RQ worker killed the job's work horse (stop-job, sent when it was cancelled mid-stage)."""
    job = job_cancelling(job_id=job_id)
    if job is not None:
        try:
            job_finish_cancelled(job)
        except ClaimLost:
            pass  # finished by the reaper meanwhile


def _execute(job: Job, files: list[JobFile]) -> str:
    started, progress = time.monotonic(), _Progress(job)
    try:
        with progress.ticking():
            stages, files = _inputs(job, files, progress)
            source = job_cached_source(job=job, job_file=files[0]) if len(files) == 1 else None
            if source is not None and _complete_from_cache(job, files[0], source, stages=progress.total,
                                                           started=started):  # fmt: skip
                return JobStatus.COMPLETED
            documents = _run(job, stages, files, progress)
    except StageError as error:
        _fail(job, files, error.code, error.message, error.stage)
        return JobStatus.FAILED
    except JobTimeoutException:
        _fail(job, files, "job_timeout", "The job ran past its time limit (RQ_DEFAULT_TIMEOUT).", progress.stage_name)
        return JobStatus.FAILED
    except (CancelRequested, ClaimLost):
        raise
    except Exception as error:  # a bug, not the document's fault: recorded, logged, not retried
        logger.exception("job %s: unexpected error", job.pk)
        _fail(job, files, "internal_error", f"Unexpected error: {type(error).__name__}.", progress.stage_name)
        return JobStatus.FAILED
    job_complete(job, files=files, stages=progress.total, processing_time_ms=_elapsed_ms(started),
                 **summarize(documents))  # fmt: skip
    return JobStatus.COMPLETED


def _inputs(job: Job, files: list[JobFile], progress: "_Progress") -> tuple[list[dict], list[JobFile]]:
    """The stages to run on each document, and the documents (a url job's is fetched first)."""
    stages = normalized(job.config or DEFAULT_CONFIG)["stages"]
    fetch_spec = stages[0] if stages and stages[0]["name"] == "fetch" else None
    stages = [spec for spec in stages if spec["name"] != "fetch"]
    if not files and job.source_type == SourceType.URL:
        progress.total = 1
        progress.stage(0, "fetch")
        files = [_fetch_input(job, fetch_spec or stage_spec("fetch"), progress)]
    if not files:
        raise StageError("no_input", "The job has no document to process.")
    progress.total = len(stages) * len(files)
    return stages, files


def _fetch_input(job: Job, spec: dict, progress: "_Progress") -> JobFile:
    """Downloads a url job's document into storage, as if it had been uploaded; a cancellation
    stops the download."""

    def check() -> None:
        progress.raise_failure()
        if _pool is not None and _pool.stopped(str(job.pk)):
            _stopped(job)

    max_bytes, timeout = fetch_limits(spec["params"])
    began = time.monotonic()
    download = with_retries(
        "fetch", spec["retry"], lambda: fetch(job.source_uri, max_bytes=max_bytes, timeout=timeout, check=check)
    )
    metrics.stage_duration("fetch", time.monotonic() - began)
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
    claimed_type = download.content_type.split(";")[0] or "application/octet-stream"
    return job_input_fetched(
        job,
        storage_name=storage_name,
        name=name,
        size=download.size,
        mime_type=detected.mime_type if detected else claimed_type,
        sha256=digest.hexdigest(),
        result={"fetch": {"url": download.url, "content_type": download.content_type}},
    )


def _run(job: Job, stages: list[dict], files: list[JobFile], progress: "_Progress") -> list[tuple[dict, dict]]:
    """Runs ``stages`` on each file in turn; returns each document's identity and outputs. The
    files' final states are set on the instances (saved with the job's outcome)."""
    documents = []
    for position, job_file in enumerate(files):
        base = position * len(stages)
        try:
            with local_path(job_file.storage_name) as path:
                document = Document(path=path, file_name=job_file.original_name, size=job_file.size, mode=job.mode)
                result = _parse(job, stages, document, progress, done_before=base)
        except StageError as error:
            metrics.stage_durations(error.record)  # the stages that succeeded before it
            _file_ended(job_file, FileStatus.FAILED, error.record, error=error.message)
            raise
        metrics.stage_durations(result.record)
        _file_ended(job_file, FileStatus.COMPLETED, result.record)
        documents.append(({"file_id": str(job_file.id), "name": job_file.original_name}, result.outputs))
    return documents


def _parse(
    job: Job, stages: list[dict], document: Document, progress: "_Progress", *, done_before: int
) -> DocumentResult:
    def on_stage(index: int, name: str) -> None:
        progress.stage(done_before + index, name)

    if _pool is None:
        return run_document(stages, document, on_stage=on_stage)
    try:
        return _pool.run(stages, document, key=str(job.pk), on_stage=on_stage, tick=progress.tick)
    except Stopped:  # RQ's stop-job killed the parser child
        _stopped(job)


def _stopped(job: Job):
    """RQ's stop-job reached this worker: sent when the job is cancelled (``CancelRequested``),
    else by an operator (the job fails ``stopped``)."""
    job_check_claim(job)  # raises CancelRequested (or ClaimLost)
    raise StageError("stopped", "The job was stopped on its worker (RQ stop-job) without being cancelled.")


def _file_ended(job_file: JobFile, status: str, record: dict, *, error: str = "") -> None:
    job_file.status, job_file.error = status, error
    job_file.result = {**(job_file.result or {}), "stages": record}
    job_file.completed_at = job_file.updated_at = timezone.now()


def _fail(job: Job, files: list[JobFile], code: str, message: str, stage: str | None) -> None:
    job_fail(job, code=code, message=message, stage=stage, files=[f for f in files if f.status != FileStatus.PENDING])


def _complete_from_cache(job: Job, job_file: JobFile, source: JobFile, *, stages: int, started: float) -> bool:
    """Completes ``job`` with a copy of the result of ``source``'s job: the same pipeline version
    on the same bytes (each copy expires on its own). False if that result expired meanwhile."""
    result = source.job.result
    try:
        text, markdown = job_result_rendering(result, "text"), job_result_rendering(result, "markdown")
    except FileNotFoundError:  # deleted by the expiry since it was found: run the job instead
        return False
    cache = {"hit": True, "source_job": str(source.job_id)}
    job_file.status, job_file.completed_at = FileStatus.COMPLETED, timezone.now()
    job_file.result = {**(job_file.result or {}), **(source.result or {}), "cache": cache}
    job_file.updated_at = job_file.completed_at
    metadata = {**result.result_metadata, "cache": cache}
    for entry in metadata.get("files", []):
        entry.update(file_id=str(job_file.id), name=job_file.original_name)
    job_complete(
        job,
        files=[job_file],
        text=text,
        markdown=markdown,
        stages=stages,
        message=f"cache hit: {source.job_id}",
        result_metadata=metadata,
        quality_score=result.quality_score,
        processing_time_ms=_elapsed_ms(started),
    )
    return True


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


class _Progress:
    """Progress and heartbeats of one claimed job, coalesced: at most one write per
    ``PROGRESS_INTERVAL`` (none for stages that end within it) and a heartbeat every
    ``HEARTBEAT_INTERVAL``. Writes are fenced: they raise ``CancelRequested`` or ``ClaimLost``.

    The job's own thread calls ``tick`` (the parser pool's wait loop does, several times a
    second). While it cannot (a stage running in this process under stock workers, a download, a
    copy from remote storage), the process's ``_Ticker`` thread writes what is due and hands what
    it met to the next ``stage`` call.
    """

    def __init__(self, job: Job):
        self.job, self.total, self.stage_name = job, 0, None
        self.lock = threading.Lock()
        self.pending: tuple[int, str] | None = None  # progress not yet written
        self.written = self.beaten = self.ticked = time.monotonic()  # the claim wrote both
        self.failure: Exception | None = None  # met by the ticker thread

    def raise_failure(self) -> None:
        """Raises what the ticker thread met (``CancelRequested``, ``ClaimLost``), if anything."""
        if self.failure is not None:
            raise self.failure

    def stage(self, done: int, name: str) -> None:
        """``name`` begins, ``done`` stages of ``total`` are done."""
        self.raise_failure()
        with self.lock:
            self.pending, self.stage_name = (done, name), name
        self.tick()

    def tick(self) -> None:
        self.ticked = time.monotonic()
        self.write_due()

    def write_due(self) -> None:
        with self.lock:
            now = time.monotonic()
            if self.pending is not None and now - self.written >= PROGRESS_INTERVAL:
                (done, name), self.pending = self.pending, None
                job_progress(self.job, done=done, total=self.total, stage=name)
                self.written = self.beaten = now
            elif now - self.beaten >= HEARTBEAT_INTERVAL:
                job_heartbeat(self.job)
                self.beaten = now

    def ticking(self):
        return _TICKER.watching(self)


class _Ticker:
    """One thread per process (started on first use; a forked work horse starts its own) that
    writes the due progress and heartbeats of jobs whose own thread has not ticked for
    ``PROGRESS_INTERVAL``. It keeps its own database connection, opened on its first write."""

    PERIOD = PROGRESS_INTERVAL / 4

    def __init__(self):
        self.lock = threading.Lock()
        self.watched: set[_Progress] = set()
        self.thread: threading.Thread | None = None

    @contextmanager
    def watching(self, progress: _Progress):
        with self.lock:
            self.watched.add(progress)
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._run, name="job-progress", daemon=True)
                self.thread.start()
        try:
            yield
        finally:
            with self.lock:
                self.watched.discard(progress)

    def _run(self) -> None:
        while True:
            time.sleep(self.PERIOD)
            with self.lock:
                watched = list(self.watched)
            for progress in watched:
                if progress.failure is None and time.monotonic() - progress.ticked >= PROGRESS_INTERVAL:
                    self._write(progress)

    @staticmethod
    def _write(progress: _Progress) -> None:
        try:
            progress.write_due()
        except (CancelRequested, ClaimLost) as error:
            progress.failure = error
        except Exception:  # a database outage: tried again at the next period
            logger.warning("job %s: progress not written", progress.job.pk, exc_info=True)
            connection.close()


_TICKER = _Ticker()
