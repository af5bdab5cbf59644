from django.contrib import admin

from pipelines.models import Pipeline, PipelineVersion


class PipelineVersionInline(admin.TabularInline):
    model = PipelineVersion
    extra = 0
    can_delete = False
    fields = ["version", "config", "created_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Pipeline)
class PipelineAdmin(admin.ModelAdmin):
    """Read-only here: configs change through the API, which validates and versions them."""

    list_display = ["name", "organization", "version", "is_active", "updated_at"]
    list_filter = ["is_active", "organization"]
    search_fields = ["name"]
    list_select_related = ["organization"]
    inlines = [PipelineVersionInline]
    readonly_fields = ["organization", "name", "description", "config", "version", "is_active", "created_by"]

    def has_add_permission(self, request):
        return False
