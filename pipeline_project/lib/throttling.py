"""Rate limits: per API key or per user when authenticated, per client IP otherwise.

Fixed-window counters in Redis (``INCRBY``, with ``EXPIRE`` on a window's first hit):
constant cost whatever the rate (DRF's stock throttles keep a list of every request's
timestamp in the cache and rewrite it on each call).

Small limits (under ``EXACT_BELOW`` per window, e.g. logins) are counted in Redis on
every request, exactly. Large ones are counted in process and added to Redis at least
every ``THROTTLE_SYNC_INTERVAL`` seconds or every 1% of the limit, whichever comes
first: a busy client costs no Redis round trip per request, and may overshoot its
limit by at most that much per web process.

Password attempts count against both the client IP and the username (``login_attempt``),
through the API's login and the admin's alike: one rule, one set of counters.

A 429 carries ``Retry-After`` (seconds to the window's end). Rates are read from
``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`` on each request, so settings overrides
apply at once. If Redis is unreachable the limit is not enforced (and that is logged):
rate limiting must not take the API down.
"""

import hashlib
import logging
import threading
import time
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

from django.conf import settings
from redis.exceptions import RedisError
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from pipeline_project.lib.redis import get_redis

logger = logging.getLogger(__name__)

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
EXACT_BELOW = 100


@dataclass(frozen=True, slots=True)
class RateWindow:
    key: str  # the Redis counter of this identity in the current window
    limit: int
    ends_at: float

    @property
    def wait(self) -> float:
        return max(0.0, self.ends_at - time.time())


def rate_window(scope: str, ident: str) -> RateWindow | None:
    """The current window for ``ident`` under ``scope``'s rate; None when unthrottled."""
    rate = api_settings.DEFAULT_THROTTLE_RATES.get(scope)
    if rate is None:
        return None
    count, period = rate.split("/")
    seconds = _PERIODS[period[0]]
    window = int(time.time() // seconds)
    return RateWindow(f"throttle:{scope}:{ident}:{window}", int(count), (window + 1) * seconds)


def _add(window: RateWindow, hits: int) -> int:
    redis = get_redis()
    total = redis.incrby(window.key, hits)
    if total == hits:  # the window's first hits; the key names its window, so a lost EXPIRE is harmless
        redis.expireat(window.key, int(window.ends_at) + 1)
    return total


@dataclass(slots=True)
class _LocalCount:
    ends_at: float
    synced: int = 0  # the window's total in Redis when last added to
    pending: int = 0  # hits counted here, not yet added to Redis
    synced_at: float = float("-inf")


_local_counts: dict[str, _LocalCount] = {}
_lock = threading.Lock()


def count_hit(window: RateWindow) -> int | None:
    """Counts one hit and returns the window's total so far (None if Redis is down)."""
    try:
        if window.limit < EXACT_BELOW:
            return _add(window, 1)
        now = time.monotonic()
        with _lock:
            count = _local_counts.get(window.key)
            if count is None:
                _prune()
                count = _local_counts[window.key] = _LocalCount(window.ends_at)
            count.pending += 1
            due = count.pending >= window.limit // 100 or now - count.synced_at >= settings.THROTTLE_SYNC_INTERVAL
            if not due:
                return count.synced + count.pending
            hits, count.pending, count.synced_at = count.pending, 0, now
        total = _add(window, hits)
        with _lock:
            count.synced = total
            return total + count.pending
    except RedisError:
        logger.warning("rate limiting skipped: Redis unavailable", exc_info=True)
        return None


def _prune() -> None:
    if len(_local_counts) > 10_000:
        now = time.time()
        for key in [key for key, count in _local_counts.items() if count.ends_at < now]:
            del _local_counts[key]


def reset_local_counts() -> None:
    """Forgets hits not yet added to Redis (tests, which flush Redis between cases)."""
    with _lock:
        _local_counts.clear()


class _WindowThrottle(BaseThrottle):
    scope: str

    def get_ident_key(self, request) -> str | None:
        raise NotImplementedError

    def allow_request(self, request, view) -> bool:
        ident = self.get_ident_key(request)
        window = None if ident is None else rate_window(self.scope, ident)
        if window is None:
            return True
        hits = count_hit(window)
        self._wait = window.wait
        return hits is None or hits <= window.limit

    def wait(self) -> float:
        return self._wait


class PrincipalRateThrottle(_WindowThrottle):
    """One bucket per API key, or per user for JWT callers."""

    scope = "principal"

    def get_ident_key(self, request):
        return getattr(request.auth, "throttle_ident", None)


class AnonRateThrottle(_WindowThrottle):
    """Unauthenticated calls (login, refresh, public endpoints), one bucket per client IP."""

    scope = "anon"

    def get_ident_key(self, request):
        if getattr(request.auth, "throttle_ident", None) is not None:
            return None
        return f"ip:{self.get_ident(request)}"


def login_attempt(request, *, username: object) -> float | None:
    """Counts one password attempt from ``request``'s client IP for ``username``.

    Returns None when it may go ahead, else the seconds until it may: each of the client IP
    and the username gets ``THROTTLE_RATE_LOGIN`` attempts per window (so neither one address
    trying many accounts nor many addresses trying one account get further). ``request`` is a
    Django or DRF request: only its client address (as DRF's ``NUM_PROXIES`` reads it) is used.
    """
    idents = [f"ip:{BaseThrottle().get_ident(request)}"]
    if isinstance(username, str) and username.strip():
        # Hashed: bounded key length whatever was typed; folded: "Admin" and "admin" share a bucket.
        folded = unicodedata.normalize("NFKC", username.strip()).casefold()
        idents.append(f"user:{hashlib.sha256(folded.encode()).hexdigest()[:32]}")
    waits = []
    for ident in idents:
        window = rate_window("login", ident)
        if window is None:
            return None
        hits = count_hit(window)
        if hits is not None and hits > window.limit:
            waits.append(window.wait)
    return max(waits, default=None)


class LoginRateThrottle(BaseThrottle):
    """Password attempts, per client IP and per username (``login_attempt``): slows down credential stuffing."""

    def allow_request(self, request, view) -> bool:
        data = request.data  # a malformed body raises here and is answered as the view would; no password checked
        self._wait = login_attempt(request, username=data.get("username") if isinstance(data, Mapping) else None)
        return self._wait is None

    def wait(self) -> float | None:
        return self._wait
