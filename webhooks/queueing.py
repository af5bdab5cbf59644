"""Putting deliveries on RQ's ``webhooks`` queue. PostgreSQL holds the delivery (the outbox);
Redis only carries a pointer to it, so a lost enqueue is repaired by the recovery cron."""

import logging
from datetime import datetime

from django.conf import settings
from django.db import transaction
from redis.exceptions import RedisError
from rq import Queue
from rq.job import Job as RQJob

from pipeline_project.lib.redis import get_redis

logger = logging.getLogger(__name__)

QUEUE = "webhooks"
DELIVER = "webhooks.tasks.deliver"  # the worker's entry point


def _queue() -> Queue:
    return Queue(QUEUE, connection=get_redis(), default_timeout=settings.WEBHOOK_TIMEOUT * 4)


def rq_job_id(delivery_id, attempts: int) -> str:
    """The RQ job id of a delivery's next attempt (``attempts`` made so far): ``delivery-<id>``,
    then ``delivery-<id>-<attempt number>``. A retry is enqueued while the RQ job of the attempt
    before it still runs: with one id, RQ would mark the new job finished as the running one
    ends and let it expire, dropping a retry scheduled further ahead."""
    return f"delivery-{delivery_id}" if attempts == 0 else f"delivery-{delivery_id}-{attempts + 1}"


def enqueue(delivery_id, attempts: int = 0, *, at: datetime | None = None) -> None:
    """Runs the next attempt of a delivery (``attempts`` made so far) now, or at ``at`` (RQ's
    scheduler: workers run with it). Enqueueing the same attempt twice sends it once."""
    job_id = rq_job_id(delivery_id, attempts)
    try:
        if at is None:
            _queue().enqueue_call(DELIVER, args=(str(delivery_id),), job_id=job_id)
        else:
            _queue().enqueue_at(at, DELIVER, str(delivery_id), job_id=job_id)
    except RedisError:
        logger.warning("delivery %s stays due in the database: Redis unavailable", delivery_id, exc_info=True)


def requeue(delivery_id, attempts: int) -> None:
    """``enqueue`` now of an attempt RQ may still hold as finished or failed (recovery): RQ keeps
    such a job's expiry when it is enqueued again, so that is removed in the same round trip."""
    job_id = rq_job_id(delivery_id, attempts)
    try:
        with get_redis().pipeline() as pipe:
            _queue().enqueue_call(DELIVER, args=(str(delivery_id),), job_id=job_id, pipeline=pipe)
            pipe.persist(RQJob.key_for(job_id))
            pipe.execute()
    except RedisError:
        logger.warning("delivery %s stays due in the database: Redis unavailable", delivery_id, exc_info=True)


def enqueue_on_commit(delivery_id, attempts: int = 0, *, at: datetime | None = None) -> None:
    transaction.on_commit(lambda: enqueue(delivery_id, attempts, at=at))
