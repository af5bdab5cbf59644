"""One error shape for the whole API: ``{"error": {"code", "message", "details"}}``.

Services raise ``ApplicationError`` subclasses (they know nothing of HTTP beyond a
status); DRF exceptions, Django's ``Http404``/``PermissionDenied``/``ValidationError``
and Django's own 400/403/404/500 handlers all end up in the same shape.
"""

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error

logger = logging.getLogger(__name__)


class ApplicationError(Exception):
    """A business-rule failure raised by a service; rendered as an API error."""

    status_code = status.HTTP_400_BAD_REQUEST
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, details: dict | None = None):
        super().__init__(message)
        self.message = message
        self.code = code or self.code
        self.details = details or {}


class NotFoundError(ApplicationError):
    status_code = status.HTTP_404_NOT_FOUND
    code = "not_found"


class ConflictError(ApplicationError):
    status_code = status.HTTP_409_CONFLICT
    code = "conflict"


class InvalidStateError(ConflictError):
    code = "invalid_state"


class TooLargeError(ApplicationError):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    code = "too_large"


class UnsupportedMediaTypeError(ApplicationError):
    status_code = status.HTTP_415_UNSUPPORTED_MEDIA_TYPE
    code = "unsupported_media_type"


def error_body(code: str, message: str, details: dict | None = None) -> dict:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def _first_code(codes) -> str | None:
    if isinstance(codes, str):
        return codes
    if isinstance(codes, list) and codes:
        return _first_code(codes[0])
    if isinstance(codes, dict) and "code" in codes:
        return _first_code(codes["code"])
    return None


def _as_drf_exception(exc: Exception) -> Exception:
    if isinstance(exc, DjangoValidationError):
        return exceptions.ValidationError(as_serializer_error(exc))
    if isinstance(exc, Http404):
        return exceptions.NotFound()
    if isinstance(exc, DjangoPermissionDenied):
        return exceptions.PermissionDenied()
    return exc


def exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF ``EXCEPTION_HANDLER``: everything DRF can render, in our shape."""
    if isinstance(exc, RequestDataTooBig):  # Django's limit on form bodies
        exc = TooLargeError("The request body is larger than this server accepts.", code="request_too_large")
    if isinstance(exc, ApplicationError):
        return Response(error_body(exc.code, exc.message, exc.details), status=exc.status_code)
    from rest_framework.views import exception_handler as drf_exception_handler  # imports our auth classes

    exc = _as_drf_exception(exc)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # unexpected: Django's handler500 renders it (and it is logged there)
    response.data = _reshape(exc, response.data)
    return response


def field_errors(data, path: str = "") -> dict[str, list[str]]:
    """DRF's validation errors, flat: ``{"<path>": ["message", ...]}`` whatever the nesting, with
    paths like ``updated_config.pipeline_id``, ``scopes[2]`` or ``config.stages[0].name`` (a key that
    already names its full path is kept as it is)."""
    if isinstance(data, dict):
        flat: dict[str, list[str]] = {}
        for key, value in data.items():
            if isinstance(key, int):  # a list field's item: DRF keys it by its index
                inner = f"{path}[{key}]"
            elif path and str(key) != path and not str(key).startswith((f"{path}.", f"{path}[")):
                inner = f"{path}.{key}"
            else:
                inner = str(key)
            for name, messages in field_errors(value, inner).items():
                flat.setdefault(name, []).extend(messages)
        return flat
    if isinstance(data, list) and any(isinstance(item, dict | list) for item in data):
        flat = {}
        for index, item in enumerate(data):
            if item:  # DRF keeps an empty entry for each valid item of a list
                for name, messages in field_errors(item, f"{path}[{index}]").items():
                    flat.setdefault(name, []).extend(messages)
        return flat
    messages = data if isinstance(data, list) else [data]
    return {path or "non_field_errors": [str(message) for message in messages]}


def _reshape(exc: Exception, data) -> dict:
    if isinstance(exc, exceptions.ValidationError):
        return error_body("invalid", "Invalid input.", field_errors(data))
    if isinstance(exc, exceptions.Throttled):
        return error_body("throttled", str(exc.detail), {"retry_after": exc.wait and int(exc.wait + 0.999)})
    if isinstance(exc, exceptions.APIException):
        code = _first_code(exc.get_codes()) or exc.default_code
        if isinstance(data, dict) and "detail" in data:  # e.g. simplejwt's {"detail", "code", "messages"}
            extra = {key: value for key, value in data.items() if key not in {"detail", "code"}}
            return error_body(code, str(data["detail"]), extra)
        return error_body(code, str(exc.detail))
    return error_body("error", str(exc))


# --- Django-level handlers (urls.py): JSON on API paths, Django's pages elsewhere ---------------


def _is_api(request) -> bool:
    return request.path.startswith(("/api/", "/health"))


def bad_request(request, exception, template_name="400.html"):
    if _is_api(request):
        return JsonResponse(error_body("bad_request", "The request could not be understood."), status=400)
    return defaults.bad_request(request, exception)


def permission_denied(request, exception, template_name="403.html"):
    if _is_api(request):
        return JsonResponse(error_body("permission_denied", "You do not have permission to do this."), status=403)
    return defaults.permission_denied(request, exception)


def page_not_found(request, exception, template_name="404.html"):
    if _is_api(request):
        return JsonResponse(error_body("not_found", f"No endpoint matches {request.path}."), status=404)
    return defaults.page_not_found(request, exception)


def server_error(request, template_name="500.html"):
    if _is_api(request):
        return JsonResponse(error_body("server_error", "An unexpected error occurred; it has been logged."), status=500)
    return defaults.server_error(request)
