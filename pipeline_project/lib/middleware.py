"""Request-level limits that the web server leaves to Django, answered in the API's error format."""

import io

from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.core.handlers.wsgi import LimitedStream
from django.http import JsonResponse

from pipeline_project.lib.errors import error_body

_READ_SIZE = 64 * 1024


class QueryStringLimitMiddleware:
    """Answers 414 ``query_too_long`` to an ``/api/`` request whose query string is longer than
    ``REQUEST_MAX_QUERY_LENGTH`` characters (as sent, percent-encoded).

    gunicorn's own limit (``--limit-request-line``) is set above it, so that clients get this
    JSON answer rather than the server's HTML page.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        limit = settings.REQUEST_MAX_QUERY_LENGTH
        length = len(request.META.get("QUERY_STRING", ""))
        if length > limit and request.path_info.startswith("/api/"):
            message = f"The query string has {length} characters; at most {limit} are accepted."
            return JsonResponse(error_body("query_too_long", message), status=414)
        return self.get_response(request)


class ChunkedBodyMiddleware:
    """Reads a chunked body (``Transfer-Encoding: chunked``, no ``Content-Length``) into memory, up to
    ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (``REQUEST_MAX_BODY_SIZE``), and hands it on with a Content-Length.

    Django reads a request body only as far as ``CONTENT_LENGTH`` says, so without this a chunked
    JSON body reads as empty. Reading to its end is safe only when the server has de-chunked it and
    marks where it ends (``wsgi.input_terminated``, which gunicorn sets; an ASGI server always has);
    otherwise, and for multipart bodies (uploads, which must stream to disk, never into memory),
    the answer is 411 ``length_required``. Beyond the limit: 413 ``request_too_large``.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "chunked" not in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
            return self.get_response(request)
        if request.META.get("CONTENT_TYPE", "").lower().startswith("multipart/"):
            return _length_required("Multipart uploads are streamed and need a Content-Length header.")
        if isinstance(request, ASGIRequest):
            source = request._stream  # the body, already received in full by the ASGI handler
        elif request.META.get("wsgi.input_terminated"):
            source = request.META["wsgi.input"]
        else:
            return _length_required("This server cannot read chunked bodies: send a Content-Length header.")
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        body = _read(source, limit)
        if limit is not None and len(body) > limit:
            message = "The request body is larger than this server accepts."
            return JsonResponse(error_body("request_too_large", message), status=413)
        # From here on the request is an ordinary one with a Content-Length (request.META is the WSGI environ).
        request.META["CONTENT_LENGTH"] = str(len(body))
        request.META.pop("HTTP_TRANSFER_ENCODING")
        if not isinstance(request, ASGIRequest):
            request.META["wsgi.input"] = io.BytesIO(body)
        request._stream = LimitedStream(io.BytesIO(body), len(body))
        return self.get_response(request)


def _read(stream, limit: int | None) -> bytes:
    """Up to ``limit + 1`` bytes (all of them when ``limit`` is None): enough to tell "too large"."""
    chunks, size = [], 0
    while limit is None or size <= limit:
        chunk = stream.read(_READ_SIZE if limit is None else min(_READ_SIZE, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _length_required(message: str) -> JsonResponse:
    return JsonResponse(error_body("length_required", message), status=411)
