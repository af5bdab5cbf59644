"""Cache of authentication lookups: in process for a second, in Redis for a minute.

Every API request must know who is calling. Looking that up in PostgreSQL costs a
query; here a process first asks its own memory (``AUTH_LOCAL_CACHE_TTL``, default
1 s), then Redis (``AUTH_CACHE_TTL``, default 60 s), and PostgreSQL only on a miss.

Entries are deleted whenever a key, user, membership or organization changes
(``accounts.signals`` and the services that use ``QuerySet.update``): at once in
Redis and in the writing process, within ``AUTH_LOCAL_CACHE_TTL`` in the other web
processes. Nothing is trusted past ``AUTH_CACHE_TTL``, a backstop for writes that
bypass both (raw SQL). ``AUTH_CACHE_TTL=0`` turns caching off.
"""

import json
import logging
import threading
import time
from functools import cache

from cachetools import TTLCache
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from redis.exceptions import RedisError

from accounts.models import ApiKey, Membership, Organization, User
from pipeline_project.lib.redis import get_redis
from pipeline_project.lib.sql import instance

logger = logging.getLogger(__name__)

USER_FIELDS = ["id", "username", "email", "first_name", "last_name", "is_active"]
ORGANIZATION_FIELDS = ["id", "name", "slug"]
API_KEY_FIELDS = ["id", "organization_id", "created_by_id", "name", "prefix", "key_hash", "scopes",
                  "expires_at", "last_used_at", "revoked_at"]  # fmt: skip
MEMBERSHIP_FIELDS = ["id", "user_id", "organization_id", "role", "is_default"]


def api_key_entry(prefix: str) -> str:
    return f"auth:key:{prefix}"


def user_entry(user_id) -> str:
    """A hash per user: one field per organization reference ("" = their default)."""
    return f"auth:user:{user_id}"


class _LocalCache:
    """Entries of this process: entry -> {field: data}, each entry kept ``AUTH_LOCAL_CACHE_TTL``."""

    def __init__(self):
        self._lock = threading.Lock()
        self._entries = None
        self._ttl = None

    def _cache(self) -> TTLCache | None:
        ttl = settings.AUTH_LOCAL_CACHE_TTL if settings.AUTH_CACHE_TTL else 0
        if ttl != self._ttl:
            self._entries, self._ttl = (TTLCache(maxsize=10_000, ttl=ttl) if ttl else None), ttl
        return self._entries

    def get(self, entry: str, field: str):
        with self._lock:
            entries = self._cache()
            return None if entries is None else entries.get(entry, {}).get(field)

    def put(self, entry: str, field: str, data: dict) -> None:
        with self._lock:
            entries = self._cache()
            if entries is not None:
                entries.setdefault(entry, {})[field] = data

    def drop(self, entries: list[str]) -> None:
        with self._lock:
            for entry in entries:
                if self._entries is not None:
                    self._entries.pop(entry, None)

    def clear(self) -> None:
        with self._lock:
            self._entries, self._ttl = None, None


_local = _LocalCache()
clear_local = _local.clear


def lookup(entry: str, field: str | None = None) -> dict | None:
    """The cached data of ``entry`` (of its hash ``field`` when given), or None."""
    ttl = settings.AUTH_CACHE_TTL
    if not ttl:
        return None
    data = _local.get(entry, field or "")
    if data is None:
        try:
            redis = get_redis()
            raw = redis.get(entry) if field is None else redis.hget(entry, field)
        except RedisError:
            logger.warning("auth cache skipped: Redis unavailable", exc_info=True)
            return None
        data = json.loads(raw) if raw else None
        if data is not None:
            _local.put(entry, field or "", data)
    if data is not None and data["cached_at"] < time.time() - ttl:
        return None
    return data


def _dump(instance: models.Model, fields: list[str]) -> dict:
    return {name: getattr(instance, name) for name in fields}


@cache
def _parsers(model: type[models.Model]) -> dict:
    """The fields whose JSON form is not their Python value (UUIDs, datetimes), with their parser."""
    return {
        field.attname: field.to_python
        for field in model._meta.concrete_fields
        if isinstance(field, models.UUIDField | models.DateTimeField)
    }


def _load(model: type[models.Model], data: dict) -> models.Model:
    """A model instance as if loaded from the database (unlisted fields deferred)."""
    parsers = _parsers(model)
    values = {name: parsers[name](value) if name in parsers and value is not None else value
              for name, value in data.items()}  # fmt: skip
    return instance(model, values)


def _write(callback) -> None:
    try:
        callback(get_redis())
    except RedisError:
        logger.warning("auth cache not updated: Redis unavailable", exc_info=True)


def load_api_key(data: dict) -> ApiKey:
    api_key = _load(ApiKey, data["api_key"])
    api_key.created_by = _load(User, data["user"])
    api_key.organization = _load(Organization, data["organization"])
    api_key.creator_role = data["role"]
    return api_key


def store_api_key(api_key: ApiKey) -> None:
    data = {
        "api_key": _dump(api_key, API_KEY_FIELDS),
        "user": _dump(api_key.created_by, USER_FIELDS),
        "organization": _dump(api_key.organization, ORGANIZATION_FIELDS),
        "role": api_key.creator_role,
        "cached_at": time.time(),
    }
    if not settings.AUTH_CACHE_TTL:
        return
    entry, payload = api_key_entry(api_key.prefix), json.dumps(data, cls=DjangoJSONEncoder)
    _local.put(entry, "", json.loads(payload))
    _write(lambda redis: redis.set(entry, payload, ex=settings.AUTH_CACHE_TTL))


def load_membership(data: dict) -> Membership:
    membership = _load(Membership, data["membership"])
    membership.user = _load(User, data["user"])
    membership.organization = _load(Organization, data["organization"])
    return membership


def store_membership(membership: Membership, organization_ref: str) -> None:
    data = {
        "membership": _dump(membership, MEMBERSHIP_FIELDS),
        "user": _dump(membership.user, USER_FIELDS),
        "organization": _dump(membership.organization, ORGANIZATION_FIELDS),
        "cached_at": time.time(),
    }
    if not settings.AUTH_CACHE_TTL:
        return
    entry, payload = user_entry(membership.user_id), json.dumps(data, cls=DjangoJSONEncoder)
    _local.put(entry, organization_ref, json.loads(payload))

    def write(redis):
        pipe = redis.pipeline(transaction=False)
        pipe.hset(entry, organization_ref, payload)
        pipe.expire(entry, settings.AUTH_CACHE_TTL)
        pipe.execute()

    _write(write)


def forget(*, user_ids=(), api_key_prefixes=()) -> None:
    """Drops cached entries now and again after the current transaction commits (so a
    request reading the old rows meanwhile cannot leave them cached)."""
    entries = [user_entry(user_id) for user_id in user_ids] + [api_key_entry(p) for p in api_key_prefixes]
    if not entries:
        return

    def drop():
        _local.drop(entries)
        _write(lambda redis: redis.delete(*entries))

    drop()
    transaction.on_commit(drop)
