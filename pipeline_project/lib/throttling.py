"""Rate limits: per API key or per user when authenticated, per client IP otherwise.

Rates are read from ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`` on every request
(DRF reads them once at import), so settings overrides take effect at once.
A 429 carries ``Retry-After``.
"""

from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle


class _SettingsRateThrottle(SimpleRateThrottle):
    def get_rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)


class PrincipalRateThrottle(_SettingsRateThrottle):
    """One bucket per API key, or per user for JWT callers."""

    scope = "principal"

    def get_cache_key(self, request, view):
        ident = getattr(request.auth, "throttle_ident", None)
        return None if ident is None else self.cache_format % {"scope": self.scope, "ident": ident}


class AnonRateThrottle(_SettingsRateThrottle):
    """Unauthenticated calls (login, refresh, public endpoints), one bucket per client IP."""

    scope = "anon"

    def get_cache_key(self, request, view):
        if getattr(request.auth, "throttle_ident", None) is not None:
            return None
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class LoginRateThrottle(_SettingsRateThrottle):
    """Password attempts, per client IP: slows down credential stuffing."""

    scope = "login"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
