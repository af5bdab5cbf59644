import django_filters as filters
from django import forms
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema_field
from rest_framework import serializers

from jobs.api.serializers import PRIORITY_VALUES
from jobs.models import Job, JobStatus, SourceType
from jobs.selectors import job_search
from pipeline_project.lib.filters import FilterSet
from pipeline_project.lib.pagination import single_param

SORT_FIELDS = ("created_at", "updated_at", "priority", "status", "file_name")


class ListWidget(forms.SelectMultiple):
    """A list parameter: repeated (``?status=failed&status=cancelled``, the schema's form, which
    generated clients send) or comma-separated (``?status=failed,cancelled``, shorter by hand)."""

    def value_from_datadict(self, data, files, name):
        values = data.getlist(name) if hasattr(data, "getlist") else [data.get(name, "")]
        return [item for value in values for item in value.split(",")]  # "" is an item, and not a status


class ChoiceListFilter(filters.MultipleChoiceFilter):
    """Rows whose field is any of the given choices (one ``IN``)."""

    def __init__(self, **kwargs):
        super().__init__(widget=ListWidget, **kwargs)

    def filter(self, queryset, value):
        return queryset.filter(**{f"{self.field_name}__in": value}) if value else queryset


@extend_schema_field({"type": "string", "enum": list(PRIORITY_VALUES)})
class PriorityFilter(filters.ChoiceFilter):
    """By name (``high``, ``normal``, ``low``); stored as a number so that sorting puts high first."""

    def __init__(self, **kwargs):
        super().__init__(choices=[(name, name) for name in PRIORITY_VALUES], **kwargs)

    def filter(self, queryset, value):
        return queryset.filter(priority=PRIORITY_VALUES[value]) if value else queryset


class JobFilter(FilterSet):
    status = ChoiceListFilter(
        choices=JobStatus.choices, help_text="One or more statuses: repeat it, or separate them with commas."
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
    sort_by = single_param(query_params, "sort_by", "created_at")
    sort_order = single_param(query_params, "sort_order", "desc")
    errors = {}
    if sort_by not in SORT_FIELDS:
        errors["sort_by"] = [f"One of: {', '.join(SORT_FIELDS)}."]
    if sort_order not in ("asc", "desc"):
        errors["sort_order"] = ["One of: asc, desc."]
    if errors:
        raise serializers.ValidationError(errors)
    sign = "-" if sort_order == "desc" else ""
    return f"{sign}{sort_by}", f"{sign}id"
