"""What the web entry points (wsgi.py, asgi.py) check before serving."""

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def refuse_unsafe_settings() -> None:
    if settings.SECRET_KEY_MISSING:
        raise ImproperlyConfigured("Environment variable SECRET_KEY is required when DEBUG is off.")
