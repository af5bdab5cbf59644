"""Request body parsers.

DRF parses JSON from the raw stream, bypassing Django's ``DATA_UPLOAD_MAX_MEMORY_SIZE``
check; this parser enforces it (also for chunked bodies without Content-Length).
"""

import io

from django.conf import settings
from rest_framework import exceptions, parsers


class RequestTooLarge(exceptions.APIException):
    status_code = 413
    default_code = "request_too_large"
    default_detail = "The request body is larger than this server accepts."


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit is not None:
            body = stream.read(limit + 1)
            if len(body) > limit:
                raise RequestTooLarge(f"JSON bodies are limited to {limit} bytes.")
            stream = io.BytesIO(body)
        return super().parse(stream, media_type, parser_context)
