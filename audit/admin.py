"""The audit trail in the admin: staff read it; nobody, superusers included, adds, changes or
deletes a record here (the chain would show it, but the admin does not even offer it)."""

from django.contrib import admin

from audit.models import AuditLog


@admin.register(AuditLog)
class AuditLogAdmin(admin.ModelAdmin):
    list_display = ["timestamp", "actor_kind", "username", "action", "resource_type", "resource_id", "success",
                    "status_code", "organization"]  # fmt: skip
    list_filter = ["organization", "actor_kind", "action", "success", "timestamp"]
    search_fields = ["resource_id", "username", "path"]
    list_select_related = ["organization"]
    date_hierarchy = "timestamp"
    show_full_result_count = False  # no COUNT(*) over millions of records
    readonly_fields = [field.name for field in AuditLog._meta.fields]
    actions = None  # not even "delete selected"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # staff with the view permission (superusers) still open records: read-only, no Save buttons

    def has_delete_permission(self, request, obj=None):
        return False
