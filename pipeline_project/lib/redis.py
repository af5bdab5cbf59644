"""One shared Redis client (with its connection pool) per process, from ``REDIS_URL``."""

from functools import lru_cache

from django.conf import settings
from redis import Redis
from rq.exceptions import NoSuchJobError
from rq.job import Job as RQJob
from rq.job import JobStatus as RQStatus

RQ_ALIVE = {RQStatus.QUEUED, RQStatus.STARTED, RQStatus.DEFERRED, RQStatus.SCHEDULED}


@lru_cache(maxsize=4)
def _client(url: str) -> Redis:
    return Redis.from_url(url, socket_connect_timeout=2, socket_timeout=10, health_check_interval=30)


def get_redis() -> Redis:
    return _client(settings.REDIS_URL)


def rq_job_alive(job_id: str) -> bool:
    """Whether RQ holds ``job_id`` queued, scheduled, deferred or running (not finished, failed,
    stopped or forgotten). Raises ``RedisError`` when Redis is down."""
    try:
        return RQJob.fetch(job_id, connection=get_redis()).get_status(refresh=False) in RQ_ALIVE
    except NoSuchJobError:
        return False
