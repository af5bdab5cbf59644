from django.contrib import admin

from jobs.models import Job, JobEvent, JobFile
from pipeline_project.lib.admin import ReadOnlyAdmin


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class JobFileInline(ReadOnlyInline):
    model = JobFile
    fields = ["original_name", "mime_type", "size", "status", "processing_status", "error", "created_at"]
    readonly_fields = fields


class JobEventInline(ReadOnlyInline):
    model = JobEvent
    fields = ["created_at", "from_status", "to_status", "actor", "message"]
    readonly_fields = fields
    ordering = ["id"]


@admin.register(Job)
class JobAdmin(ReadOnlyAdmin):
    """Jobs are changed through the API's state machine only; the admin reads them."""

    list_display = ["id", "organization", "status", "source_type", "file_name", "priority", "attempts", "created_at"]
    list_filter = ["status", "source_type", "priority", "organization"]
    search_fields = ["=id", "file_name", "source_uri"]
    list_select_related = ["organization"]
    date_hierarchy = "created_at"
    show_full_result_count = False  # no COUNT(*) over millions of jobs
    inlines = [JobFileInline, JobEventInline]
    readonly_fields = [field.name for field in Job._meta.fields]
