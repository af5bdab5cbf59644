import django_filters as filters
from rest_framework import serializers

from jobs.api.serializers import PRIORITY_VALUES
from jobs.models import Job, JobStatus, SourceType
from jobs.selectors import job_search

SORT_FIELDS = ("created_at", "updated_at", "priority", "status", "file_name")


class JobFilter(filters.FilterSet):
    status = filters.CharFilter(
        method="filter_status", help_text="One or more statuses: `?status=failed,cancelled` or repeated."
    )
    source_type = filters.ChoiceFilter(choices=SourceType.choices)
    priority = filters.ChoiceFilter(choices=[(name, name) for name in PRIORITY_VALUES], method="filter_priority")
    pipeline = filters.UUIDFilter(field_name="pipeline_id")
    created_after = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    search = filters.CharFilter(method="filter_search", help_text="File name, id prefix or metadata text.")

    class Meta:
        model = Job
        fields = ["status", "source_type", "priority", "pipeline", "created_after", "created_before", "search"]

    def filter_status(self, queryset, name, value):
        statuses = {s.strip() for raw in self.request.query_params.getlist("status") for s in raw.split(",")}
        statuses.discard("")
        unknown = sorted(statuses - set(JobStatus.values))
        if unknown:
            raise serializers.ValidationError({"status": [f"Unknown status: {', '.join(unknown)}."]})
        return queryset.filter(status__in=statuses) if statuses else queryset

    def filter_priority(self, queryset, name, value):
        return queryset.filter(priority=PRIORITY_VALUES[value])

    def filter_search(self, queryset, name, value):
        return job_search(queryset, value) if value.strip() else queryset


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
