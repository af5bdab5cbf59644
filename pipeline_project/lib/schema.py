"""OpenAPI generation: every operation documents every error response it can give.

``AutoSchema`` adds the errors any operation of its kind can answer (400 for a bad query
string or body, 401/403 unless public, 404 with a path parameter, 413/415 with a body,
414, 429); ``errors(...)`` adds the ones only the view knows about (409 for a state
conflict, 401 on the public token endpoints), always with the one ``Error`` body.
"""

from django.core.exceptions import ImproperlyConfigured
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.plumbing import force_instance, is_serializer, warn
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, PolymorphicProxySerializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny

from pipeline_project.lib.fields import loose_fields
from pipeline_project.lib.permissions import required_permission_for


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable machine-readable code, e.g. `not_found`, `invalid`.")
    message = serializers.CharField(help_text="Human-readable explanation.")
    details = serializers.DictField(
        help_text="Extra context; for `invalid`, a map of field name to messages.",
    )


class ErrorSerializer(serializers.Serializer):
    error = ErrorBodySerializer()


ERROR_DESCRIPTIONS = {
    400: "Invalid input (`invalid`, details by field) or a malformed request (`parse_error`, `bad_request`).",
    401: "Missing, invalid, expired or revoked credentials (`not_authenticated`, `authentication_failed`).",
    403: "Authenticated, but missing the required permission (`permission_denied`).",
    404: "No such object in your organization (`not_found`).",
    409: "The request conflicts with the object's current state (`invalid_state`, ...).",
    411: "A chunked body this server cannot read, or a chunked upload: send Content-Length (`length_required`).",
    413: "The body or a file is larger than this server accepts (`request_too_large`, `file_too_large`).",
    414: "The query string is longer than this server accepts (`query_too_long`).",
    415: "Unsupported content type (`unsupported_media_type`).",
    429: "Rate limit exceeded (`throttled`); see the `Retry-After` header.",
}


def errors(*codes: int, **notes: str) -> dict:
    """Error responses for ``extend_schema(responses={..., **errors(409)})``. A note refines a
    code's description: ``errors(conflict="`invalid_state`: the job is finished.")``.
    Notes by name: ``unauthorized`` (401), ``not_found`` (404), ``conflict`` (409)."""
    by_name = {"unauthorized": 401, "not_found": 404, "conflict": 409}
    described = {code: ERROR_DESCRIPTIONS[code] for code in codes}
    for name, note in notes.items():
        described[by_name[name]] = note
    return {code: OpenApiResponse(ErrorSerializer, description=text) for code, text in described.items()}


ORGANIZATION_PARAMETER = OpenApiParameter(
    "X-Organization",
    str,
    OpenApiParameter.HEADER,
    description="With a JWT: the organization to act in (its id or slug), if you belong to several; default: "
    "your default one; one you are not a member of is 403 `not_a_member`. Ignored with an API key, which "
    "belongs to one organization.",
)


class AutoSchema(SpectacularAutoSchema):
    def get_operation(self, *args, **kwargs):
        operation = super().get_operation(*args, **kwargs)
        try:
            required = required_permission_for(self.view, self.method)
        except ImproperlyConfigured:  # public views declare none
            if operation is not None and operation.get("security") == [{}]:
                operation["security"] = []  # "no credentials", which clients read as such ([{}] reads as "some")
            return operation
        if operation is not None:
            needs = f"Requires the `{required}` permission." if required else "Any authenticated caller."
            operation["description"] = f"{operation.get('description', '')}\n\n{needs}".strip()
        return operation

    def _get_request_for_media_type(self, serializer, direction="request"):
        serializer = force_instance(serializer)
        parts = [serializer]
        if isinstance(serializer, PolymorphicProxySerializer):
            parts = serializer.serializers
            parts = list(parts.values()) if isinstance(parts, dict) else parts
        for part in parts:
            part = force_instance(part)
            if is_serializer(part):
                for name in loose_fields(part):
                    warn(f"{type(part).__name__}.{name} is not a strict field (pipeline_project.lib.fields).")
        return super()._get_request_for_media_type(serializer, direction)

    def get_override_parameters(self):
        parameters = list(super().get_override_parameters())
        if not any(cls is AllowAny for cls in getattr(self.view, "permission_classes", [])):
            parameters.append(ORGANIZATION_PARAMETER)
        return parameters

    def _get_request_body(self, direction="request"):
        body = super()._get_request_body(direction)
        if body is not None and isinstance(force_instance(self.get_request_serializer()), PolymorphicProxySerializer):
            body["required"] = True  # one of several shapes, each with required fields: never empty
        return body

    def _get_paginator(self):
        paginator = super()._get_paginator()
        if paginator is not None:
            paginator.schema_registry = self.registry  # lets a paginator name the shapes it returns
        return paginator

    def get_paginated_name(self, serializer_name: str) -> str:
        return f"{serializer_name}{self._get_paginator().schema_suffix}"

    def _default_error_codes(self) -> list[int]:
        codes = [400, 414]
        if self.method in {"POST", "PUT", "PATCH"}:
            codes += [411, 413, 415]
        if not any(cls is AllowAny for cls in getattr(self.view, "permission_classes", [])):
            codes += [401, 403]
        if "{" in self.path:
            codes.append(404)
        return [*codes, 429]

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction == "response":
            for code in self._default_error_codes():
                if str(code) not in responses:
                    response = self._get_response_for_code(ErrorSerializer, str(code), direction=direction)
                    response["description"] = ERROR_DESCRIPTIONS[code]
                    responses[str(code)] = response
        return dict(sorted(responses.items()))
