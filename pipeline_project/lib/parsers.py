"""Request body parsers.

DRF parses JSON from the raw stream, bypassing Django's ``DATA_UPLOAD_MAX_MEMORY_SIZE``
check; this parser enforces it (also for chunked bodies without Content-Length), and
refuses what PostgreSQL cannot store (``lib.json_input``) as a 400 naming the field.
"""

from django.conf import settings
from rest_framework import exceptions, parsers
from rest_framework.serializers import ValidationError

from pipeline_project.lib import json_input
from pipeline_project.lib.errors import TooLargeError


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        body = stream.read() if limit is None else stream.read(limit + 1)
        if limit is not None and len(body) > limit:
            raise TooLargeError(f"JSON bodies are limited to {limit} bytes.", code="request_too_large")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise exceptions.ParseError(f"JSON parse error - the body is not UTF-8: {exc}") from None
        try:
            return json_input.loads(text)
        except json_input.UnsafeJSON as exc:
            raise ValidationError({exc.path or "non_field_errors": [exc.message]}) from None
        except ValueError as exc:
            raise exceptions.ParseError(f"JSON parse error - {exc}") from None
