"""Our RQ worker class: ``manage.py rqworker --worker-class jobs.worker.Worker`` (the default
in ``make run``, the Procfile and compose).

Stock RQ forks a fresh work horse for every job: each job then pays for new imports, model
loads and a new PostgreSQL connection. This worker runs the job function in its own
long-lived process (RQ's ``SimpleWorker``), warm and connected, and isolates only what can
crash or hang: each document's parser stages run in a child process of a ``ParserPool``
(``pipelines.isolation``), reused across jobs and replaced after ``WORKER_CHILD_MAX_TASKS``
documents, a crash, or above ``WORKER_CHILD_MAX_MEMORY``.

RQ's stop-job command (sent when a processing job is cancelled) kills the parser child of
that job; the engine then finishes the cancellation. RQ's job timeout raises in this process
and the pool kills the child. Stock RQ workers still run the same jobs (in process, unisolated).

Every log line of a job's run, RQ's own ("Job OK") and the parser child's included, carries its
job id (``pipeline_project.lib.logs``). RQ's lines about housekeeping jobs (the scheduler's every
10 s) are left out: those jobs log a line themselves when they act.
"""

import dataclasses
import logging

from django.conf import settings
from rq import SimpleWorker

from jobs import engine
from pipeline_project import metrics
from pipeline_project.lib import logs
from pipelines import runner
from pipelines.isolation import ParserPool
from pipelines.runner import Document

logger = logging.getLogger(__name__)

RUN_JOB = "jobs.tasks.run_job"  # its RQ job id is our job id


class Worker(SimpleWorker):
    parsers: ParserPool | None = None
    log_result_lifespan = False  # no "result is kept for 500 seconds" line after every job

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("log_job_description", False)  # RQ's "job started" line: execute_job says it
        super().__init__(*args, **kwargs)
        if not any(isinstance(f, logs.QuietHousekeeping) for f in self.log.filters):
            self.log.addFilter(logs.QuietHousekeeping())

    def work(self, *args, **kwargs):
        runner.warm()  # before the first child is forked: every child starts warm
        self.parsers = _Parsers(max_tasks=settings.WORKER_CHILD_MAX_TASKS,
                                max_memory=settings.WORKER_CHILD_MAX_MEMORY)  # fmt: skip
        self.parsers.warm()
        engine.use_parser_pool(self.parsers)
        try:
            return super().work(*args, **kwargs)
        finally:
            engine.use_parser_pool(None)
            self.parsers.close()
            metrics.process_exiting()  # the worker process ends when this returns

    def kill_horse(self, sig=None):
        """RQ's stop-job (it sets ``_stopped_job_id``, then calls this from its pubsub thread):
        that job's parser child is killed, or its download abandoned; this process lives on.
        (RQ's cold shutdown reaches a running job as ``SystemExit`` instead, which kills the child.)"""
        job_id = self._stopped_job_id
        if job_id and self.parsers is not None:
            self.parsers.stop(job_id)

    def execute_job(self, job, queue):
        housekeeping = bool(job.meta.get(logs.HOUSEKEEPING))
        if not housekeeping:
            self.log.info(logs.QuietHousekeeping.STARTED, self.name, queue.name, job.description, job.id)
        with logs.bound(logs.housekeeping, job.id if housekeeping else None), \
                logs.bound(logs.job_id, job.id if job.func_name == RUN_JOB else None):  # fmt: skip
            return super().execute_job(job, queue)

    def perform_job(self, job, queue, execution) -> bool:
        try:
            return super().perform_job(job, queue, execution)
        finally:
            self._stopped_job_id = None  # handled by the engine: never a failure here


class _Parsers(ParserPool):
    """Hands each document to the parser child with the id of its job (``key``), for the child's
    log lines: the child is forked once and serves many jobs."""

    def run(self, stages, document, *, key, **kwargs):
        return super().run(stages, _JobDocument(**vars(document), job_id=key), key=key, **kwargs)


@dataclasses.dataclass(frozen=True)
class _JobDocument(Document):
    job_id: str = ""

    def context(self):  # called in the child as the document's stages begin (``runner.run_document``)
        logs.job_id.set(self.job_id or None)
        return super().context()
