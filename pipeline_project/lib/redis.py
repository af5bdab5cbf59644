"""One shared Redis client (with its connection pool) per process, from ``REDIS_URL``."""

from functools import lru_cache

from django.conf import settings
from redis import Redis


@lru_cache(maxsize=4)
def _client(url: str) -> Redis:
    return Redis.from_url(url, socket_connect_timeout=2, socket_timeout=10, health_check_interval=30)


def get_redis() -> Redis:
    return _client(settings.REDIS_URL)
