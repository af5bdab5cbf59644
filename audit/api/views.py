import re

import django_filters as filters
from django import forms
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import mixins, viewsets

from accounts import roles
from audit import selectors
from audit.api.serializers import AuditLogSerializer
from audit.models import AuditLog
from pipeline_project.lib.fields import INT64_MAX
from pipeline_project.lib.filters import FilterSet
from pipeline_project.lib.pagination import CursorPagination
from pipeline_project.lib.schema import ErrorSerializer, errors

UUID = "[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
EXAMPLE = {
    "id": "5b0e8f0c-3f4d-4a53-9d1c-8a6f4f0c2a11",
    "timestamp": "2026-11-25T09:14:03.512348Z",
    "actor_kind": "api_key",
    "user_id": 42,
    "username": "alice",
    "api_key_id": "9a3e4c1d-52b7-4f0e-a6d8-3c1f7e2b5d90",
    "action": "jobs.cancel",
    "resource_type": "job",
    "resource_id": "c2a7d4e9-1b3f-4e8a-9c6d-5f0b2e7a8d13",
    "success": False,
    "error_message": "The job is finished or already being cancelled.",
    "request_details": {"body": {"json": {"confirm_token": "[redacted]"}}},
    "method": "POST",
    "path": "/api/v1/jobs/c2a7d4e9-1b3f-4e8a-9c6d-5f0b2e7a8d13/cancel",
    "status_code": 409,
    "duration_ms": 12,
    "request_id": "3f1d0c5e9b8a4d2c8e7f6a5b4c3d2e1f",
    "ip_address": "203.0.113.7",
    "user_agent": "python-requests/2.32.3",
    "seq": 1042,
    "prev_hash": "9f2c1e0d8b7a6f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0f9e8d7c",
    "hash": "4e5d6c7b8a9f0e1d2c3b4a5968778695a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9",
}


class IntegerField(forms.IntegerField):
    """ASCII digits only: Python's ``int()`` also reads "1_0" and other scripts' digits."""

    def to_python(self, value):
        if value not in self.empty_values and not re.fullmatch(r"[0-9]+", str(value)):
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return super().to_python(value)


class IntegerFilter(filters.Filter):
    field_class = IntegerField


@extend_schema_field(OpenApiTypes.BOOL)
class BooleanFilter(filters.TypedChoiceFilter):
    """``true`` or ``false``, nothing else (django-filter's own ignores what it cannot read)."""

    def __init__(self, **kwargs):
        super().__init__(choices=[("true", "true"), ("false", "false")], coerce=lambda value: value == "true", **kwargs)


def text_filter(max_length: int, description: str) -> filters.CharFilter:
    schema = {"type": "string", "maxLength": max_length, "description": description}
    return extend_schema_field(schema)(filters.CharFilter(max_length=max_length))


def integer_filter(minimum: int, maximum: int, description: str, **kwargs) -> IntegerFilter:
    schema = {"type": "integer", "minimum": minimum, "maximum": maximum, "description": description}
    return extend_schema_field(schema)(IntegerFilter(min_value=minimum, max_value=maximum, **kwargs))


class AuditLogFilter(FilterSet):
    from_ = filters.IsoDateTimeFilter(field_name="timestamp", lookup_expr="gte", help_text="Records at or after this.")
    to = filters.IsoDateTimeFilter(field_name="timestamp", lookup_expr="lt", help_text="Records before this.")
    user = integer_filter(1, INT64_MAX, "The acting user's id (`user_id`).", field_name="user_id")
    api_key = filters.UUIDFilter(field_name="api_key_id", help_text="The API key's id (`api_key_id`).")
    action = text_filter(64, "Exactly, e.g. `jobs.create`, `auth.login`, `admin.change`.")
    resource_type = text_filter(32, "Exactly, e.g. `job`, `pipeline`, `api_key`.")
    resource_id = text_filter(64, "Exactly, e.g. a job's id.")
    success = BooleanFilter()
    status_code = integer_filter(100, 599, "The HTTP status answered.")

    class Meta:
        model = AuditLog
        fields = []  # all declared above


# `from` is a Python keyword: declared as `from_`, taken (and documented) as `from`.
AuditLogFilter.base_filters = {
    "from" if name == "from_" else name: declared for name, declared in AuditLogFilter.base_filters.items()
}


@extend_schema(tags=["audit"])
class AuditLogViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The audit trail of the caller's organization: every API call, staff action and system action.
    Read-only: records are never changed or deleted through the API."""

    required_permission = roles.AUDIT_READ
    serializer_class = AuditLogSerializer
    queryset = AuditLog.objects.none()  # for the schema; requests use the selector
    filterset_class = AuditLogFilter
    pagination_class = CursorPagination
    cursor_ordering = ("-timestamp", "-id")
    lookup_value_regex = UUID

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return selectors.audit_log_queryset(principal=self.request.auth)

    def filter_queryset(self, queryset):
        return super().filter_queryset(queryset) if self.action == "list" else queryset  # the list's filters only

    @extend_schema(
        summary="List audit records",
        description="Newest first, in cursor pages. Filters combine (AND); `from` and `to` bound the timestamp.",
        responses={
            200: AuditLogSerializer(many=True),
            400: OpenApiResponse(
                ErrorSerializer,
                description="A filter, `cursor` or `page_size` that is not valid (`invalid`, details by parameter).",
            ),
        },
        examples=[
            OpenApiExample("Jobs", value="job", parameter_only=("resource_type", OpenApiParameter.QUERY)),
            OpenApiExample("Cancellations", value="jobs.cancel", parameter_only=("action", OpenApiParameter.QUERY)),
            OpenApiExample("Since", value="2026-11-01T00:00:00Z", parameter_only=("from", OpenApiParameter.QUERY)),
        ],
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(
        summary="Get an audit record",
        responses={200: AuditLogSerializer, **errors(not_found="`not_found`: no such record in your organization.")},
        examples=[OpenApiExample("A refused cancellation", value=EXAMPLE, response_only=True)],
    )
    def retrieve(self, request, *args, **kwargs):
        return super().retrieve(request, *args, **kwargs)
