"""OpenAPI generation: every operation documents the error responses it can give."""

from django.core.exceptions import ImproperlyConfigured
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from rest_framework import serializers
from rest_framework.permissions import AllowAny

from pipeline_project.lib.permissions import required_permission_for


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable machine-readable code, e.g. `not_found`, `invalid`.")
    message = serializers.CharField(help_text="Human-readable explanation.")
    details = serializers.DictField(
        help_text="Extra context; for `invalid`, a map of field name to messages.",
    )


class ErrorSerializer(serializers.Serializer):
    error = ErrorBodySerializer()


_ERROR_DESCRIPTIONS = {
    "400": "Invalid input (`invalid`) or malformed request (`parse_error`).",
    "401": "Missing, invalid, expired or revoked credentials.",
    "403": "Authenticated, but missing the required permission.",
    "404": "No such object in your organization.",
    "415": "Unsupported content type.",
    "429": "Rate limit exceeded; see the `Retry-After` header.",
}


class AutoSchema(SpectacularAutoSchema):
    def get_operation(self, *args, **kwargs):
        operation = super().get_operation(*args, **kwargs)
        try:
            required = required_permission_for(self.view, self.method)
        except ImproperlyConfigured:
            return operation  # public views declare none
        if operation is not None:
            needs = f"Requires the `{required}` permission." if required else "Any authenticated caller."
            operation["description"] = f"{operation.get('description', '')}\n\n{needs}".strip()
        return operation

    def _error_codes(self) -> list[str]:
        codes = []
        has_body = self.method in {"POST", "PUT", "PATCH"}
        if has_body:
            codes += ["400", "415"]
        if not any(cls is AllowAny for cls in getattr(self.view, "permission_classes", [])):
            codes += ["401", "403"]
        if "{" in self.path:
            codes.append("404")
        codes.append("429")
        return codes

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction == "response":
            for code in self._error_codes():
                if code not in responses:
                    response = self._get_response_for_code(ErrorSerializer, code, direction=direction)
                    response["description"] = _ERROR_DESCRIPTIONS[code]
                    responses[code] = response
        return responses
