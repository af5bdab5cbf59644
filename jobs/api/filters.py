import django_filters as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema_field
from rest_framework import serializers

from jobs.api.serializers import PRIORITY_VALUES
from jobs.models import Job, JobStatus, SourceType
from jobs.selectors import job_search
from pipeline_project.lib.filters import FilterSet

SORT_FIELDS = ("created_at", "updated_at", "priority", "status", "file_name")


class ChoiceInFilter(filters.BaseInFilter, filters.ChoiceFilter):
    """Comma-separated choices: ``?status=failed,cancelled``."""


@extend_schema_field({"type": "string", "enum": list(PRIORITY_VALUES)})
class PriorityFilter(filters.ChoiceFilter):
    """By name (``high``, ``normal``, ``low``); stored as a number so that sorting puts high first."""

    def __init__(self, **kwargs):
        super().__init__(choices=[(name, name) for name in PRIORITY_VALUES], **kwargs)

    def filter(self, queryset, value):
        return queryset.filter(priority=PRIORITY_VALUES[value]) if value else queryset


class JobFilter(FilterSet):
    status = ChoiceInFilter(
        choices=JobStatus.choices, lookup_expr="in", help_text="One or more statuses, comma-separated."
    )
    source_type = filters.ChoiceFilter(choices=SourceType.choices)
    priority = PriorityFilter()
    pipeline = filters.UUIDFilter(field_name="pipeline_id")
    created_after = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    search = filters.CharFilter(
        method="filter_search", max_length=200, help_text="File name, id prefix or metadata text."
    )

    class Meta:
        model = Job
        fields = ["status", "source_type", "priority", "pipeline", "created_after", "created_before", "search"]

    def filter_search(self, queryset, name, value):
        return job_search(queryset, value) if value.strip() else queryset


SORT_PARAMETERS = [
    OpenApiParameter("sort_by", OpenApiTypes.STR, enum=SORT_FIELDS, description="Default created_at."),
    OpenApiParameter("sort_order", OpenApiTypes.STR, enum=["asc", "desc"], description="Default desc."),
]


def job_ordering(query_params) -> tuple[str, str]:
    """``sort_by`` + ``sort_order`` -> an ordering ending in the unique id (stable pages, cursors)."""
    sort_by = query_params.get("sort_by", "created_at")
    sort_order = query_params.get("sort_order", "desc")
    errors = {}
    if sort_by not in SORT_FIELDS:
        errors["sort_by"] = [f"One of: {', '.join(SORT_FIELDS)}."]
    if sort_order not in ("asc", "desc"):
        errors["sort_order"] = ["One of: asc, desc."]
    if errors:
        raise serializers.ValidationError(errors)
    sign = "-" if sort_order == "desc" else ""
    return f"{sign}{sort_by}", f"{sign}id"
