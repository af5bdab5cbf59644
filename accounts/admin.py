"""Staff manage users, organizations, memberships and API keys in the admin.

API keys are written only through ``accounts.services`` (the API's services): created on the add
page, the full key shown once on the page that answers the save (never stored: not in a message,
the session or a cookie), revoked by an action with a confirmation page or from the key's own page.
Both are audited as staff actions. A key is otherwise read-only: nothing edits or deletes one.
"""

from django import forms
from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.html import format_html, format_html_join

from accounts.admin_login import ThrottledAdminLoginForm
from accounts.models import API_KEY_LEAD, ApiKey, Membership, Organization, User
from accounts.principal import Principal
from accounts.roles import ALL_PERMISSIONS, ROLE_PERMISSIONS
from accounts.services import api_key_create, api_key_revoke
from audit.services import audit_staff_action
from pipeline_project.lib.admin import confirmed_action, status_badge

admin.site.login_form = ThrottledAdminLoginForm  # login attempts are rate limited (admin_login.py)

# Status of a key -> badge colour (white text reads on each, in the light and the dark theme).
STATUS_COLOURS = {"active": "#2e7d32", "expired": "#8d6e00", "revoked": "#b3261e"}


# --- Users, organizations, memberships --------------------------------------------------------


class MembershipInline(admin.TabularInline):
    """An organization's members."""

    model = Membership
    extra = 0
    autocomplete_fields = ["user"]
    fields = ["user", "role", "is_default", "created_at"]
    readonly_fields = ["created_at"]


class UserMembershipInline(admin.TabularInline):
    """A user's organizations."""

    model = Membership
    fk_name = "user"
    extra = 0
    autocomplete_fields = ["organization"]
    fields = ["organization", "role", "is_default", "created_at"]
    readonly_fields = ["created_at"]
    verbose_name = "organization membership"


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = ["username", "email", "is_active", "is_staff", "organizations_list", "date_joined", "last_login"]
    list_filter = [*DjangoUserAdmin.list_filter, "memberships__role", "memberships__organization"]
    inlines = [UserMembershipInline]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("memberships__organization")

    @admin.display(description="organizations (role)")
    def organizations_list(self, user):
        return ", ".join(f"{m.organization.name} ({m.role})" for m in user.memberships.all()) or "-"

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []  # the add page asks only for a name and a password


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "member_count", "created_at"]
    search_fields = ["name", "slug"]
    ordering = ["name"]  # the member count groups rows, and a grouped query drops Meta.ordering
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(member_count=Count("memberships"))

    @admin.display(description="members", ordering="member_count")
    def member_count(self, organization):
        return organization.member_count


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "organization", "role", "is_default", "created_at"]
    list_filter = ["role", "is_default", "organization"]
    search_fields = ["user__username", "user__email", "organization__name", "organization__slug"]
    list_select_related = ["user", "organization"]
    autocomplete_fields = ["user", "organization"]


# --- API keys ---------------------------------------------------------------------------------


class ApiKeyStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("expired", "Expired"), ("revoked", "Revoked")]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "active":
            return queryset.usable(now)
        if self.value() == "expired":
            return queryset.filter(revoked_at__isnull=True, expires_at__lte=now)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


class ApiKeyAddForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=[(p, p) for p in ALL_PERMISSIONS],
        widget=forms.CheckboxSelectMultiple,
        help_text="Narrowed, at every request, to what the owner's role allows.",
    )

    class Meta:
        model = ApiKey
        fields = ["organization", "created_by", "name", "scopes", "expires_at"]
        labels = {"created_by": "Owner"}
        help_texts = {
            "created_by": "A member of the organization: the key acts as them, within their role.",
            "expires_at": "Empty: the key never expires.",
        }

    def clean_expires_at(self):
        expires_at = self.cleaned_data.get("expires_at")
        if expires_at is not None and expires_at <= timezone.now():
            raise ValidationError("Must be in the future.")
        return expires_at

    def clean(self):
        cleaned = super().clean()
        organization, user = cleaned.get("organization"), cleaned.get("created_by")
        if organization and user:
            membership = Membership.objects.filter(organization=organization, user=user).first()
            if membership is None:
                raise ValidationError("The owner must be a member of the organization.")
            cleaned["role"] = membership.role
        return cleaned


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "masked_key", "organization", "created_by", "status_badge", "scope_list", "expires_at",
                    "last_used_at", "created_at"]  # fmt: skip
    list_display_links = ["name", "masked_key"]
    list_filter = [ApiKeyStatusFilter, "organization", "created_at", "last_used_at"]
    search_fields = ["=id", "name", "prefix", "created_by__username", "organization__name", "organization__slug"]
    list_select_related = ["organization", "created_by"]
    autocomplete_fields = ["organization", "created_by"]
    fields = ["name", "masked_key", "organization", "created_by", "status_badge", "scope_list", "expires_at",
              "last_used_at", "revoked_at", "created_at", "audit_trail"]  # fmt: skip
    readonly_fields = fields
    actions = ["revoke_api_keys"]
    created_template = "admin/accounts/apikey/created.html"

    # Nothing edits or deletes a key (revoke it); staff with the change permission revoke.
    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_revoke_permission(self, request) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.change_{self.opts.model_name}")

    # --- columns and read-only fields

    @admin.display(description="key", ordering="prefix")
    def masked_key(self, api_key):
        return format_html("<code>{}_{}_…</code>", API_KEY_LEAD, api_key.prefix)

    @admin.display(description="status")
    def status_badge(self, api_key):
        return status_badge(api_key.status, STATUS_COLOURS)

    @admin.display(description="scopes")
    def scope_list(self, api_key):
        if set(api_key.scopes) >= set(ALL_PERMISSIONS):
            return "all"
        return format_html_join(" ", "<code>{}</code>", ((scope,) for scope in api_key.scopes)) or "-"

    @admin.display(description="audit trail")
    def audit_trail(self, api_key):
        return format_html('<a href="{}">Audit records of this key</a> (its requests and what was done to it)',
                           audit_url(api_key))  # fmt: skip

    # --- creating: the add form, then the key once

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = ApiKeyAddForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        return ApiKeyAddForm.Meta.fields if obj is None else self.fields

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        principal = Principal(
            user=data["created_by"],
            organization=data["organization"],
            role=data["role"],
            permissions=frozenset(ALL_PERMISSIONS),  # staff may grant any scope; use narrows it to the role
        )
        with transaction.atomic():
            api_key, key = api_key_create(
                principal=principal, name=data["name"], scopes=data["scopes"], expires_at=data["expires_at"]
            )
            audit_staff_action(request=request, action="admin.api_keys.create", obj=api_key, details={
                "name": api_key.name, "prefix": api_key.prefix, "owner": data["created_by"].get_username(),
                "scopes": api_key.scopes, "expires_at": api_key.expires_at.isoformat() if api_key.expires_at else None,
            })  # fmt: skip
        for field in ApiKey._meta.concrete_fields:  # the admin logs and answers about ``obj``: make it the key
            setattr(obj, field.attname, getattr(api_key, field.attname))
        obj._state.adding = False
        obj.created_key = key  # for response_add only; never stored
        obj.beyond_role = sorted(set(api_key.scopes) - ROLE_PERMISSIONS[data["role"]])
        obj.owner_role = data["role"]

    def response_add(self, request, obj, post_url_continue=None):
        """The key, once, on the page answering the save (not a redirect: nothing carries it to another
        request). Reloading that page would post the form again and make another key."""
        context = {
            **self.admin_site.each_context(request),
            "title": "API key created",
            "subtitle": str(obj),
            "opts": self.opts,
            "api_key": obj,
            "key": obj.created_key,
            "owner_role": obj.owner_role,
            "beyond_role": obj.beyond_role,
            "key_url": reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_change", args=[obj.pk]),
            "add_url": reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_add"),
        }
        request.current_app = self.admin_site.name
        response = TemplateResponse(request, self.created_template, context)
        add_never_cache_headers(response)  # no-store: the key stays out of every cache
        return response

    # --- revoking: the action (confirmation page) and the key's own page

    @admin.action(description="Revoke selected API keys", permissions=["revoke"])
    def revoke_api_keys(self, request, queryset):
        return confirmed_action(
            self,
            request,
            queryset.select_related("organization", "created_by"),
            title="Revoke API keys",
            verb="revoke",
            past="revoked",
            note="A revoked key is refused at once (401) by every API call; this cannot be undone.",
            skip_reason=lambda api_key: "already revoked" if api_key.revoked_at is not None else None,
            perform=lambda api_key: self._revoke(request, api_key),
        )

    def _revoke(self, request, api_key: ApiKey) -> None:
        api_key_revoke(api_key=api_key)
        audit_staff_action(request=request, action="admin.api_keys.revoke", obj=api_key,
                           details={"name": api_key.name, "prefix": api_key.prefix})  # fmt: skip

    def get_urls(self):
        name = f"{self.opts.app_label}_{self.opts.model_name}_revoke"
        return [
            path("<path:object_id>/revoke/", self.admin_site.admin_view(self.revoke_view), name=name),
            *super().get_urls(),
        ]

    def revoke_view(self, request, object_id):
        """One key's revocation, from its page: the same confirmation page and action."""
        if not self.has_revoke_permission(request):
            raise PermissionDenied
        api_key = self.get_object(request, unquote(object_id))
        if api_key is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        queryset = self.get_queryset(request).filter(pk=api_key.pk)
        response = self.revoke_api_keys(request, queryset)
        if response is not None:
            return response  # the confirmation page (GET), or a refusal
        return HttpResponseRedirect(reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_change",
                                            args=[api_key.pk]))  # fmt: skip

    def change_view(self, request, object_id, form_url="", extra_context=None):
        api_key = self.get_object(request, unquote(object_id))
        extra = {"can_revoke": self.has_revoke_permission(request) and api_key is not None
                 and api_key.revoked_at is None, "audit_url": audit_url(api_key) if api_key else ""}  # fmt: skip
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})


def audit_url(api_key: ApiKey) -> str:
    """The audit trail's list narrowed to one key: requests made with it and actions on it
    (``audit.admin.ApiKeyFilter``)."""
    return f"{reverse('admin:audit_auditlog_changelist')}?api_key={api_key.pk}"
