"""Putting deliveries on RQ's ``webhooks`` queue. PostgreSQL holds the delivery (the outbox);
Redis only carries a pointer to it, so a lost enqueue is repaired by the recovery cron."""

import logging
from collections.abc import Iterable
from datetime import datetime
from functools import lru_cache

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
    return _cached_queue(get_redis(), settings.WEBHOOK_TIMEOUT * 4)


@lru_cache(maxsize=4)
def _cached_queue(connection, default_timeout: int) -> Queue:  # kept: RQ asks the server version once per Queue
    return Queue(QUEUE, connection=connection, default_timeout=default_timeout)


def rq_job_id(delivery_id, attempts: int) -> str:
    """The RQ job id of a delivery's next attempt (``attempts`` made so far): ``delivery-<id>``,
    then ``delivery-<id>-<attempt number>``. A retry is enqueued while the RQ job of the attempt
    before it still runs: with one id, RQ would mark the new job finished as the running one
    ends and let it expire, dropping a retry scheduled further ahead."""
    return f"delivery-{delivery_id}" if attempts == 0 else f"delivery-{delivery_id}-{attempts + 1}"


def enqueue(delivery_id, attempts: int = 0, *, at: datetime | None = None) -> None:
    """Runs the next attempt of a delivery (``attempts`` made so far) now, or at ``at`` (RQ's
    scheduler: workers run with it). Enqueueing the same attempt twice sends it once."""
    if at is None:
        enqueue_many([(delivery_id, attempts)])
        return
    try:
        _queue().enqueue_at(at, DELIVER, str(delivery_id), job_id=rq_job_id(delivery_id, attempts))
    except RedisError:
        logger.warning("delivery %s stays due in the database: Redis unavailable", delivery_id, exc_info=True)


def enqueue_many(deliveries: Iterable[tuple[object, int]], *, again: bool = False) -> None:
    """Runs the next attempt of each ``(delivery_id, attempts made)`` now, all in one Redis round
    trip. ``again`` (recovery): RQ may still hold that attempt as finished or failed, and it keeps
    such a job's expiry when it is enqueued again: the expiry is removed in the same round trip."""
    deliveries = list(deliveries)
    try:
        with get_redis().pipeline() as pipe:
            for delivery_id, attempts in deliveries:
                job_id = rq_job_id(delivery_id, attempts)
                _queue().enqueue_call(DELIVER, args=(str(delivery_id),), job_id=job_id, pipeline=pipe)
                if again:
                    pipe.persist(RQJob.key_for(job_id))
            pipe.execute()
    except RedisError:
        ids = ", ".join(str(delivery_id) for delivery_id, _ in deliveries)
        logger.warning("deliveries %s stay due in the database: Redis unavailable", ids, exc_info=True)


def enqueue_on_commit(delivery_id, attempts: int = 0, *, at: datetime | None = None) -> None:
    transaction.on_commit(lambda: enqueue(delivery_id, attempts, at=at))
