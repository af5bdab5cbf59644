"""Records every ``/api/`` request in the audit trail, whatever its answer (401, 403, 404, 429 and
5xx included), and gives every response an ``X-Request-ID`` (the client's, when well-formed).

It sits near the top of the middleware stack, so that the answers of the middleware below it
(414, 411, 413) and of the views are all seen. What it keeps is redacted first (``redaction``).
The record is made when the response is closed, after the client has it, and handed to
``audit_request`` (queued for the writer): it never holds up or fails the request.
"""

import json
import logging
import re
import time
import uuid

from django.conf import settings
from rest_framework.throttling import BaseThrottle

from accounts.principal import Principal
from audit import actions
from audit.models import ActorKind
from audit.redaction import Redactor
from audit.services import audit_request
from pipeline_project.lib import logs

logger = logging.getLogger(__name__)

REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
BODY_READ_MAX = 1024 * 1024  # larger bodies are recorded by size only (never read twice into memory)
CREDENTIAL_HEADERS = ("HTTP_AUTHORIZATION", "HTTP_X_API_KEY", "HTTP_COOKIE")


class AuditMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.ident = BaseThrottle()  # the client address, as the rate limits read it (NUM_PROXIES)

    def __call__(self, request):
        request_id = request.META.get("HTTP_X_REQUEST_ID", "")
        if not REQUEST_ID.match(request_id):
            request_id = uuid.uuid4().hex
        request.request_id = request_id
        audited = settings.AUDIT_API_REQUESTS and request.path_info.startswith("/api/")
        raw = _body(request) if audited else b""
        started = time.monotonic()
        # On every log line of the request, until its response is closed: Django logs a 4xx or
        # 5xx answer after the middleware returns, and the audit record is made at the close.
        token = logs.request_id.set(request_id)
        try:
            response = self.get_response(request)
        except BaseException:
            logs.unbind(logs.request_id, token)
            raise
        response["X-Request-ID"] = request_id
        if audited:
            duration_ms = int((time.monotonic() - started) * 1000)
            # Recorded when the server closes the response, once the client has it: the answer
            # never waits for its audit record. (Django runs these closers in ``response.close()``.)
            response._resource_closers.append(lambda: self.record(request, response, raw, duration_ms))
        response._resource_closers.append(lambda: logs.unbind(logs.request_id, token))
        return response

    def record(self, request, response, raw: bytes, duration_ms: int) -> None:
        try:
            fields = self.describe(request, response, raw, duration_ms)
        except Exception:  # describing must never fail: record what is certain
            logger.exception("audit: request %s could not be described", request.request_id)
            fields = {"action": "unknown", "actor_kind": ActorKind.ANONYMOUS, "method": request.method,
                      "status_code": response.status_code, "success": response.status_code < 400,
                      "request_id": request.request_id,
                      "error_message": "the request could not be described"}  # fmt: skip
        audit_request(**fields)

    def describe(self, request, response, raw: bytes, duration_ms: int) -> dict:
        meta = request.META
        redactor = Redactor([meta.get(header, "") for header in CREDENTIAL_HEADERS] + _credential_parts(meta))
        action, resource_type, resource_id = actions.name(getattr(request, "resolver_match", None), request.method)
        data = getattr(response, "data", None)
        created = []
        if response.status_code == 201 and isinstance(data, dict):
            created = [str(data["id"])] if "id" in data else [str(job["id"]) for job in data.get("jobs", [])]
            resource_id = resource_id or (created[0] if created else "")
        details = {}
        if meta.get("QUERY_STRING"):
            details["query"] = redactor.query(meta["QUERY_STRING"])
        body = redactor.body(raw, meta.get("CONTENT_TYPE", ""), settings.AUDIT_BODY_MAX)
        if body is None and _length(meta):
            body = {"content_type": meta.get("CONTENT_TYPE", "")[:100], "size": _length(meta)}
        if body is not None:
            details["body"] = body
        if len(created) > 1:
            details["created"] = created

        fields = {
            "action": action,
            "resource_type": resource_type,
            "resource_id": redactor.text(resource_id),
            "success": response.status_code < 400,
            "error_message": redactor.text(_error_message(response)) if response.status_code >= 400 else "",
            "request_details": details,
            "method": request.method,
            "path": redactor.text(request.path),
            "status_code": response.status_code,
            "duration_ms": duration_ms,
            "request_id": request.request_id,
            "ip_address": self.ident.get_ident(request),
            "user_agent": redactor.text(meta.get("HTTP_USER_AGENT", "")),
            "actor_kind": ActorKind.ANONYMOUS,
        }
        principal = getattr(request, "auth", None)
        if isinstance(principal, Principal):
            fields.update(
                organization_id=principal.organization.pk,
                user_id=principal.user.pk,
                username=principal.user.get_username(),
                api_key_id=principal.api_key.pk if principal.api_key is not None else None,
                actor_kind=ActorKind.API_KEY if principal.api_key is not None else ActorKind.USER,
            )
        elif action == "auth.login":
            fields.update(_login(body, succeeded=fields["success"]))
        return fields


def _body(request) -> bytes:
    """The body of a small JSON or form request, read now (the view reads it again from memory);
    b"" for uploads and large or chunked bodies, which are recorded by size only."""
    content_type = request.META.get("CONTENT_TYPE", "")
    if not ("json" in content_type or content_type.startswith("application/x-www-form-urlencoded")):
        return b""
    if not 0 < _length(request.META) <= BODY_READ_MAX:
        return b""
    try:
        return request.body
    except Exception:
        return b""


def _length(meta) -> int:
    try:
        return int(meta.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def _credential_parts(meta) -> list[str]:
    """The token part of ``Authorization: Bearer <token>`` / ``Api-Key <key>`` (scrubbed on its own too)."""
    value = meta.get("HTTP_AUTHORIZATION", "")
    return [value.split(None, 1)[1]] if " " in value.strip() else []


def _error_message(response) -> str:
    data = getattr(response, "data", None)
    if not isinstance(data, dict):
        try:
            data = (
                json.loads(response.content)
                if response.get("Content-Type", "").startswith("application/json")
                else None
            )
        except (ValueError, AttributeError):  # not JSON, or streamed
            data = None
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        return str(data["error"].get("message", ""))[:1000]
    return f"HTTP {response.status_code}"


def _login(body: dict | None, *, succeeded: bool) -> dict:
    """A login's attempted username (never the password); the user and organization if it exists.
    A failed attempt stays anonymous: whoever typed the name is not known to be that user."""
    from accounts.models import Membership

    username = ((body or {}).get("json") or {}).get("username")
    if not isinstance(username, str) or not username:
        return {}
    fields = {"username": username[:150], "actor_kind": ActorKind.USER if succeeded else ActorKind.ANONYMOUS}
    membership = Membership.objects.filter(user__username=username).order_by("-is_default", "created_at").first()
    if membership is not None:
        fields.update(user_id=membership.user_id, organization_id=membership.organization_id)
    return fields
