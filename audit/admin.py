"""The audit trail in the admin: staff read it; nobody, superusers included, adds, changes or
deletes a record here (the chain would show it, but the admin does not even offer it)."""

import uuid

from django.contrib import admin
from django.db.models import Q

from accounts.models import ApiKey
from audit.actions import FAMILIES
from audit.models import AuditLog
from pipeline_project.lib.admin import LargeTableAdmin

# How records name an API key as their resource: the API's ``api_keys.*`` and system actions say
# ``api_key``; staff actions (``audit_staff_action``, the admin log) the model's name, ``apikey``.
API_KEY_RESOURCE_TYPES = ["api_key", "apikey"]


class ApiKeyFilter(admin.SimpleListFilter):
    """``?api_key=<id>``: the records of one key, the requests made with it and the actions on it
    (the key's admin page links here). Shown only while it is in use: it offers no list of keys."""

    title = "API key"
    parameter_name = "api_key"

    def _key_id(self) -> uuid.UUID | None:
        try:
            return uuid.UUID(str(self.value()))
        except ValueError:
            return None

    def lookups(self, request, model_admin):
        key_id = self.value() and self._key_id()
        if not key_id:
            return []
        api_key = ApiKey.objects.filter(pk=key_id).first()
        return [(self.value(), str(api_key) if api_key else str(key_id))]

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        key_id = self._key_id()
        if key_id is None:
            return queryset.none()
        records = queryset.filter(Q(api_key_id=key_id) | Q(resource_type__in=API_KEY_RESOURCE_TYPES,
                                                            resource_id=str(key_id)))  # fmt: skip
        organization_id = ApiKey.objects.filter(pk=key_id).values_list("organization_id", flat=True).first()
        # A key's records are its organization's: say so, for the (organization, ...) indexes.
        return records.filter(organization_id=organization_id) if organization_id else records


class ActionFilter(admin.SimpleListFilter):
    """Actions by family (``jobs``, ``auth``, ``admin``, ...): a fixed list, where the stock filter
    would read the distinct actions of the whole table on every page. ``?action__exact=jobs.cancel``
    still narrows to one action."""

    title = "action"
    parameter_name = "action"

    def lookups(self, request, model_admin):
        return [(family, f"{family}.*") for family in FAMILIES]

    def queryset(self, request, queryset):
        return queryset.filter(action__startswith=f"{self.value()}.") if self.value() else queryset


@admin.register(AuditLog)
class AuditLogAdmin(LargeTableAdmin, admin.ModelAdmin):
    list_display = ["timestamp", "actor_kind", "username", "action", "resource_type", "resource_id", "success",
                    "status_code", "organization"]  # fmt: skip
    list_filter = ["organization", "actor_kind", ActionFilter, "success", "timestamp", ApiKeyFilter]
    search_fields = ["resource_id", "username", "path"]
    list_select_related = ["organization"]
    date_hierarchy = "timestamp"  # drawn without reading rows (LargeTableAdmin)
    sortable_by = ["timestamp"]  # the order an index serves (audit_time)
    readonly_fields = [field.name for field in AuditLog._meta.fields]
    actions = None  # not even "delete selected"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # staff with the view permission (superusers) still open records: read-only, no Save buttons

    def has_delete_permission(self, request, obj=None):
        return False
