from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db import transaction
from django.utils import timezone

from accounts.admin_login import ThrottledAdminLoginForm
from accounts.models import ApiKey, Membership, Organization, User
from accounts.principal import Principal
from accounts.roles import ALL_PERMISSIONS, ROLE_PERMISSIONS
from accounts.services import api_key_create, api_key_revoke
from audit.services import audit_staff_action

admin.site.login_form = ThrottledAdminLoginForm  # login attempts are rate limited (admin_login.py)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]
    fields = ["user", "role", "is_default", "created_at"]
    readonly_fields = ["created_at"]


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = ["username", "email", "is_active", "is_staff", "date_joined"]


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]


class ApiKeyAddForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=[(p, p) for p in ALL_PERMISSIONS],
        widget=forms.CheckboxSelectMultiple,
        help_text="Narrowed, at every request, to what the owner's role allows.",
    )

    class Meta:
        model = ApiKey
        fields = ["organization", "created_by", "name", "scopes", "expires_at"]

    def clean(self):
        cleaned = super().clean()
        organization, user = cleaned.get("organization"), cleaned.get("created_by")
        if organization and user:
            membership = Membership.objects.filter(organization=organization, user=user).first()
            if membership is None:
                raise forms.ValidationError("The owner must be a member of the organization.")
            cleaned["role"] = membership.role
        return cleaned


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "organization", "created_by", "status", "expires_at", "last_used_at"]
    list_filter = ["organization", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix", "created_by__username", "organization__name"]
    list_select_related = ["organization", "created_by"]
    readonly_fields = ["prefix", "scopes", "last_used_at", "revoked_at", "created_at", "status"]
    fields = ["organization", "created_by", "name", *readonly_fields, "expires_at"]
    autocomplete_fields = ["organization", "created_by"]
    actions = ["revoke"]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = ApiKeyAddForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        return ApiKeyAddForm.Meta.fields if obj is None else self.fields

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else [*self.readonly_fields, "organization", "created_by"]

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        data = form.cleaned_data
        principal = Principal(
            user=data["created_by"],
            organization=data["organization"],
            role=data["role"],
            permissions=frozenset(ALL_PERMISSIONS),  # staff may grant any scope; use narrows it to the role
        )
        api_key, key = api_key_create(
            principal=principal, name=data["name"], scopes=data["scopes"], expires_at=data["expires_at"]
        )
        obj.pk = api_key.pk  # so the admin redirects to the created key
        messages.warning(request, f"Copy this key now, it will not be shown again: {key}")
        if not set(data["scopes"]) <= ROLE_PERMISSIONS[data["role"]]:
            messages.info(request, f"Scopes beyond the owner's role ({data['role']}) have no effect.")

    @admin.action(description="Revoke selected API keys")
    def revoke(self, request, queryset):
        count = 0
        for api_key in queryset.filter(revoked_at__isnull=True):
            with transaction.atomic():
                api_key_revoke(api_key=api_key)
                audit_staff_action(request=request, action="admin.api_keys.revoke", obj=api_key)
            count += 1
        self.message_user(request, f"Revoked {count} API key(s) at {timezone.now():%Y-%m-%d %H:%M} UTC.")
