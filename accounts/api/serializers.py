from django.utils import timezone
from rest_framework import serializers

from accounts.models import ApiKey, Organization, User
from accounts.roles import ALL_PERMISSIONS, Role
from pipeline_project.lib import fields


class LoginSerializer(serializers.Serializer):
    username = fields.CharField(max_length=150)
    password = fields.CharField(max_length=4096, style={"input_type": "password"}, trim_whitespace=False)


class TokenPairSerializer(serializers.Serializer):
    access = serializers.CharField(help_text="Short-lived JWT; send as `Authorization: Bearer <access>`.")
    refresh = serializers.CharField(help_text="Exchange at /auth/refresh; single use (rotated).")
    token_type = serializers.CharField(default="Bearer")
    expires_in = serializers.IntegerField(help_text="Seconds until the access token expires.")


class RefreshSerializer(serializers.Serializer):
    refresh = fields.CharField(max_length=4096, trim_whitespace=False)


class UserSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "username", "email", "first_name", "last_name"]


class OrganizationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Organization
        fields = ["id", "name", "slug"]


class ApiKeyRefSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()


class MeSerializer(serializers.Serializer):
    user = UserSerializer()
    organization = OrganizationSerializer()
    role = serializers.ChoiceField(choices=Role.choices)
    permissions = serializers.ListField(child=serializers.CharField())
    auth_method = serializers.ChoiceField(choices=["jwt", "api_key"])
    api_key = ApiKeyRefSerializer(allow_null=True)


class ApiKeySerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", read_only=True)
    status = serializers.ChoiceField(choices=["active", "expired", "revoked"], read_only=True)
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=ALL_PERMISSIONS))

    class Meta:
        model = ApiKey
        fields = [
            "id",
            "name",
            "prefix",
            "scopes",
            "status",
            "expires_at",
            "last_used_at",
            "revoked_at",
            "created_at",
            "created_by",
        ]
        read_only_fields = fields


class ApiKeyCreatedSerializer(ApiKeySerializer):
    key = serializers.CharField(read_only=True, help_text="The full key. Shown only in this response: store it now.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key"]
        read_only_fields = fields


class ApiKeyCreateSerializer(serializers.Serializer):
    name = fields.NameField(max_length=100)
    scopes = serializers.ListField(
        child=fields.ChoiceField(choices=ALL_PERMISSIONS),
        required=False,
        min_length=1,
        help_text="Permissions for the key; a subset of yours. Default: all of yours.",
    )
    expires_at = fields.DateTimeField(required=False, allow_null=True, help_text="Future; none: never expires.")

    def validate_expires_at(self, value):
        if value is not None and value <= timezone.now():
            raise serializers.ValidationError("Must be in the future.")
        return value
