from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from pipeline_project.lib import fields
from pipelines.models import Pipeline, PipelineVersion
from pipelines.validation import normalized, validate_config

CONFIG_HELP = 'A list of stages: {"stages": [{"name": "detect"}, {"name": "extract_text", "params": {...}}]}.'
CONFIG_SCHEMA = {"$ref": "#/components/schemas/PipelineConfig"}  # pipelines.api.schema publishes it


@extend_schema_field(CONFIG_SCHEMA)
class ConfigField(fields.JSONObjectField):
    """A pipeline config, checked against the stage registry; errors name the bad field's path."""

    def to_internal_value(self, data):
        errors = validate_config(data)
        if errors:
            raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


class PipelineSerializer(fields.ModelSerializer):
    name = fields.NameField(max_length=100, help_text="Unique in your organization.")
    description = fields.CharField(required=False, allow_blank=True, max_length=2000)
    config = ConfigField(help_text=CONFIG_HELP)

    class Meta:
        model = Pipeline
        fields = ["id", "name", "description", "config", "version", "is_active", "created_at", "updated_at"]
        read_only_fields = ["id", "version", "created_at", "updated_at"]


class PipelineVersionSerializer(serializers.ModelSerializer):
    config = serializers.SerializerMethodField()

    class Meta:
        model = PipelineVersion
        fields = ["version", "config", "created_at"]
        read_only_fields = fields

    @extend_schema_field(CONFIG_SCHEMA)
    def get_config(self, version) -> dict:
        return version.config


class StageSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    params_schema = serializers.DictField(help_text="JSON Schema of the stage's params.")
    needs = serializers.ListField(child=serializers.CharField(), help_text="Stages that must come before.")


class ValidateSerializer(serializers.Serializer):
    config = ConfigField(help_text=CONFIG_HELP)


@extend_schema_field(CONFIG_SCHEMA)
class NormalizedConfigField(serializers.DictField):
    pass


class ValidateResponseSerializer(serializers.Serializer):
    valid = serializers.BooleanField()
    normalized = NormalizedConfigField(help_text="What jobs run: prerequisites added, every default filled in.")


def validated_response(config: dict) -> dict:
    return {"valid": True, "normalized": normalized(config)}
