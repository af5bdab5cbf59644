"""Typed readers for environment variables.

Every reader takes the variable name and a default, returns a typed value and
raises ``ImproperlyConfigured`` naming the variable when the value is malformed,
so a typo stops start-up instead of surfacing as a strange runtime error.
"""

import os
import re
from urllib.parse import urlparse

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_RATE_RE = re.compile(r"^\d+/(s|sec|second|m|min|minute|h|hour|d|day)$")


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    return None if value is None else value.strip()


def _bad(name: str, value: str, expected: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"Environment variable {name}={value!r} is invalid: expected {expected}.")


def env_str(name: str, default: str = "") -> str:
    value = _raw(name)
    return default if value is None or value == "" else value


def env_bool(name: str, default: bool = False) -> bool:
    value = _raw(name)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise _bad(name, value, "a boolean (1/0, true/false, yes/no, on/off)")


def env_int(name: str, default: int, *, minimum: int | None = 0) -> int:
    value = _raw(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise _bad(name, value, "an integer") from None
    if minimum is not None and number < minimum:
        raise _bad(name, value, f"an integer >= {minimum}")
    return number


def env_bytes(name: str, default: int) -> int:
    """A size in bytes; accepts plain integers or K/M/G suffixes (binary units)."""
    value = _raw(name)
    if value is None or value == "":
        return default
    match = re.fullmatch(r"(\d+)\s*([kmg]i?b?)?", value.lower())
    if not match:
        raise _bad(name, value, "a size in bytes such as 1048576, 512K, 100M or 1G")
    multiplier = {"k": 1024, "m": 1024**2, "g": 1024**3}.get((match.group(2) or " ")[0], 1)
    return int(match.group(1)) * multiplier


def env_seconds(name: str, default: int) -> int:
    """A duration in seconds; accepts plain integers or s/m/h/d suffixes (``15m``, ``7d``)."""
    value = _raw(name)
    if value is None or value == "":
        return default
    match = re.fullmatch(r"(\d+)\s*([smhd])?", value.lower())
    if not match or int(match.group(1)) == 0:
        raise _bad(name, value, "a positive duration such as 300, 15m, 12h or 7d")
    return int(match.group(1)) * _DURATION_UNITS[match.group(2) or "s"]


def env_list(name: str, default: list[str]) -> list[str]:
    value = _raw(name)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def env_url(name: str, default: str, *, schemes: tuple[str, ...]) -> str:
    value = env_str(name, default)
    parsed = urlparse(value)
    if parsed.scheme not in schemes:
        raise _bad(name, value, f"a URL with scheme {' or '.join(schemes)}")
    return value


def env_rate(name: str, default: str) -> str | None:
    """A DRF throttle rate such as ``100/min``; ``none`` disables the throttle."""
    value = env_str(name, default)
    if value.lower() == "none":
        return None
    if not _RATE_RE.match(value):
        raise _bad(name, value, "a rate such as 100/min, 10/s, 5000/hour or 'none'")
    return value
