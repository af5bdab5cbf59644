"""Publishes the pipeline config's JSON Schema, built from the stage registry, as OpenAPI
components (a drf-spectacular postprocessing hook, see SPECTACULAR_SETTINGS)."""

from pipelines.validation import config_schema_components


def add_config_components(result, generator, request, public):
    result.setdefault("components", {}).setdefault("schemas", {}).update(config_schema_components())
    return result
