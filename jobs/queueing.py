"""Putting jobs on RQ. PostgreSQL holds the job; Redis only carries a pointer to it.

Jobs are enqueued after the transaction that queued them commits, on the queue of
their priority, with the RQ job id equal to our job id (so a duplicate enqueue of the
same job is harmless: the worker claims the row, not the message). If Redis is down,
the job stays ``queued`` in the database and the reconciler enqueues it again later.

An enqueue is one Redis round trip, however many jobs: RQ's own ``Queue.enqueue_call`` (so
the data is exactly RQ's, for stock workers) writing into one transactional pipeline that is
sent once. Called without a pipeline, RQ would send one to register the queue and another to
save and push the job; ``Queue`` objects are kept per process (RQ caches the server version
it asks for once on the connection).
"""

import logging
from collections.abc import Iterable
from functools import lru_cache

from django.conf import settings
from django.db import transaction
from redis.exceptions import RedisError
from rq import Callback, Queue
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job as RQJob

from pipeline_project.lib.redis import get_redis

logger = logging.getLogger(__name__)

RUN_JOB = "jobs.tasks.run_job"  # the worker's entry point (the processing engine)
JOB_STOPPED = "jobs.tasks.job_stopped"  # runs in the worker when a running job is stopped


def queue(name: str) -> Queue:
    return _queue(name, get_redis(), settings.RQ_DEFAULT_TIMEOUT)


@lru_cache(maxsize=32)
def _queue(name: str, connection, default_timeout: int) -> Queue:
    return Queue(name, connection=connection, default_timeout=default_timeout)


def enqueue(job_id, queue_name: str) -> None:
    enqueue_many([(job_id, queue_name)])


def enqueue_many(jobs: Iterable[tuple[object, str]], *, again: bool = False) -> None:
    """Puts each ``(job_id, queue_name)`` on RQ, all in one Redis round trip. ``again``: RQ may
    still hold the job from an earlier attempt (finished, failed, stopped), and it keeps such a
    job's expiry when it is enqueued again, which would drop it from Redis while it waits: the
    expiry is removed in the same round trip."""
    jobs = list(jobs)
    try:
        with get_redis().pipeline() as pipe:
            for job_id, queue_name in jobs:
                queue(queue_name).enqueue_call(
                    RUN_JOB, args=(str(job_id),), job_id=str(job_id), on_stopped=Callback(JOB_STOPPED), pipeline=pipe
                )
                if again:
                    pipe.persist(RQJob.key_for(str(job_id)))
            pipe.execute()
    except RedisError:
        ids = ", ".join(str(job_id) for job_id, _ in jobs)
        logger.warning("jobs %s stay queued in the database: Redis unavailable", ids, exc_info=True)


def dequeue(job_id, queue_name: str) -> None:
    try:
        queue(queue_name).remove(str(job_id))
    except RedisError:
        logger.warning("could not remove job %s from queue %s", job_id, queue_name, exc_info=True)


def stop(job_id) -> None:
    """Asks the worker running ``job_id`` to kill it now (a long stage does not check for
    cancellation); its ``on_stopped`` callback finishes the cancellation."""
    try:
        send_stop_job_command(get_redis(), str(job_id))
    except (InvalidJobOperation, NoSuchJobError):
        pass  # not running (yet, or any more): the cooperative check between stages handles it
    except RedisError:
        logger.warning("could not send stop-job for %s", job_id, exc_info=True)


def stop_on_commit(job_id) -> None:
    transaction.on_commit(lambda: stop(job_id))


def requeue(job_id, queue_name: str) -> None:
    """``enqueue`` for a job that ran or was enqueued before (the reaper's requeue, the reconciler)."""
    enqueue_many([(job_id, queue_name)], again=True)


def requeue_on_commit(job_id, queue_name: str) -> None:
    transaction.on_commit(lambda: requeue(job_id, queue_name))


def enqueue_on_commit(job_id, queue_name: str) -> None:
    transaction.on_commit(lambda: enqueue(job_id, queue_name))


def enqueue_many_on_commit(jobs: Iterable[tuple[object, str]]) -> None:
    jobs = list(jobs)
    if jobs:
        transaction.on_commit(lambda: enqueue_many(jobs))


def dequeue_on_commit(job_id, queue_name: str) -> None:
    transaction.on_commit(lambda: dequeue(job_id, queue_name))
