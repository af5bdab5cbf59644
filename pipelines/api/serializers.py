from rest_framework import serializers

from pipelines.models import Pipeline, PipelineVersion
from pipelines.validation import normalized, validate_config

CONFIG_HELP = 'A list of stages: {"stages": [{"name": "detect"}, {"name": "extract_text", "params": {...}}]}.'


class ConfigField(serializers.JSONField):
    """A pipeline config, checked against the stage registry; errors name the bad field's path."""

    def to_internal_value(self, data):
        config = super().to_internal_value(data)
        errors = validate_config(config)
        if errors:
            raise serializers.ValidationError(errors)
        return config


class PipelineSerializer(serializers.ModelSerializer):
    config = ConfigField(help_text=CONFIG_HELP)

    class Meta:
        model = Pipeline
        fields = ["id", "name", "description", "config", "version", "is_active", "created_at", "updated_at"]
        read_only_fields = ["id", "version", "created_at", "updated_at"]
        extra_kwargs = {"name": {"validators": []}}  # uniqueness is per organization: the service checks it


class PipelineVersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = PipelineVersion
        fields = ["version", "config", "created_at"]
        read_only_fields = fields


class StageSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    params_schema = serializers.DictField(help_text="JSON Schema of the stage's params.")
    needs = serializers.ListField(child=serializers.CharField(), help_text="Stages that must come before.")


class ValidateRequestSerializer(serializers.Serializer):
    config = ConfigField(help_text=CONFIG_HELP)


class ValidateResponseSerializer(serializers.Serializer):
    valid = serializers.BooleanField()
    normalized = serializers.DictField(help_text="The config with every default filled in: what jobs run.")


def validated_response(config: dict) -> dict:
    return {"valid": True, "normalized": normalized(config)}
