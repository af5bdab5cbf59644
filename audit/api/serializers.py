from rest_framework import serializers

from audit.models import AuditLog


class AuditLogSerializer(serializers.ModelSerializer):
    user_id = serializers.IntegerField(read_only=True, allow_null=True, help_text="The acting user's id.")
    api_key_id = serializers.UUIDField(read_only=True, allow_null=True, help_text="The API key used, if any.")
    request_details = serializers.DictField(read_only=True, help_text="Redacted query, body excerpt, changes.")

    class Meta:
        model = AuditLog
        fields = ["id", "timestamp", "actor_kind", "user_id", "username", "api_key_id", "action", "resource_type",
                  "resource_id", "success", "error_message", "request_details", "method", "path", "status_code",
                  "duration_ms", "request_id", "ip_address", "user_agent", "seq", "prev_hash", "hash"]  # fmt: skip
        read_only_fields = fields
