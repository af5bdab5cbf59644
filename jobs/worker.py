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
"""

import logging

from django.conf import settings
from rq import SimpleWorker

from jobs import engine
from pipelines import runner
from pipelines.isolation import ParserPool

logger = logging.getLogger(__name__)


class Worker(SimpleWorker):
    parsers: ParserPool | None = None

    def work(self, *args, **kwargs):
        runner.warm()  # before the first child is forked: every child starts warm
        self.parsers = ParserPool(max_tasks=settings.WORKER_CHILD_MAX_TASKS,
                                  max_memory=settings.WORKER_CHILD_MAX_MEMORY)  # fmt: skip
        self.parsers.warm()
        engine.use_parser_pool(self.parsers)
        try:
            return super().work(*args, **kwargs)
        finally:
            engine.use_parser_pool(None)
            self.parsers.close()

    def kill_horse(self, sig=None):
        """RQ's stop-job (it sets ``_stopped_job_id``, then calls this from its pubsub thread):
        that job's parser child is killed, or its download abandoned; this process lives on.
        (RQ's cold shutdown reaches a running job as ``SystemExit`` instead, which kills the child.)"""
        job_id = self._stopped_job_id
        if job_id and self.parsers is not None:
            self.parsers.stop(job_id)

    def perform_job(self, job, queue, execution) -> bool:
        try:
            return super().perform_job(job, queue, execution)
        finally:
            self._stopped_job_id = None  # handled by the engine: never a failure here
