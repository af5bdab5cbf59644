"""Validating a pipeline config against the stage registry.

A config is ``{"stages": [{"name": "<stage>", "params": {...}, "retry": {...}}, ...]}``.
Errors come back keyed by the path of the bad field (``config.stages[1].params.max_pages``),
ready for a 400 response.
"""

from jsonschema import Draft202012Validator

from pipelines.stages import REGISTRY

DEFAULT_CONFIG = {"stages": [{"name": "detect"}, {"name": "extract_text"}, {"name": "language"}, {"name": "quality"}]}
RETRY_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "attempts": {"type": "integer", "minimum": 1, "maximum": 10, "default": 3},
        "backoff_seconds": {"type": "number", "minimum": 0, "maximum": 300, "default": 1},
    },
}
_STAGE_KEYS = {"name", "params", "retry"}


def validate_config(config) -> dict[str, list[str]]:
    """The errors of ``config`` by field path; empty when it is valid."""
    if not isinstance(config, dict):
        return {"config": ["Must be an object with a list of stages."]}
    errors: dict[str, list[str]] = {}
    for key in sorted(set(config) - {"stages"}):
        errors.setdefault(f"config.{key}", []).append("Unknown field.")
    stages = config.get("stages")
    if not isinstance(stages, list) or not stages:
        errors["config.stages"] = ["Must be a non-empty list of stages."]
        return errors
    seen: list[str] = []
    for index, entry in enumerate(stages):
        path = f"config.stages[{index}]"
        if not isinstance(entry, dict):
            errors[path] = ["Must be an object with a stage name."]
            continue
        for key in sorted(set(entry) - _STAGE_KEYS):
            errors.setdefault(f"{path}.{key}", []).append("Unknown field.")
        name = entry.get("name")
        stage = REGISTRY.get(name) if isinstance(name, str) else None
        if stage is None:
            errors[f"{path}.name"] = [f"Unknown stage {name!r}; known stages: {', '.join(sorted(REGISTRY))}."]
            continue
        if name == "fetch" and index != 0:
            errors[f"{path}.name"] = ["fetch must be the first stage."]
        missing = [need for need in stage.needs if need not in seen]
        if missing:
            errors[f"{path}.name"] = [f"'{name}' needs {', '.join(missing)} earlier in the pipeline."]
        _check(stage.params_schema, entry.get("params", {}), f"{path}.params", errors)
        _check(RETRY_SCHEMA, entry.get("retry", {}), f"{path}.retry", errors)
        seen.append(name)
    return errors


def _check(schema: dict, value, path: str, errors: dict) -> None:
    for error in Draft202012Validator(schema).iter_errors(value):
        where = ".".join([path, *(str(part) for part in error.absolute_path)])
        if error.validator == "additionalProperties":
            message = "Unknown parameter: " + ", ".join(sorted(set(error.instance) - set(schema["properties"])))
        else:
            message = error.message
        errors.setdefault(where, []).append(message)


def normalized(config: dict) -> dict:
    """A valid config with every default filled in: what a job actually runs."""
    return {"stages": [stage_spec(entry["name"], entry) for entry in config["stages"]]}


def stage_spec(name: str, entry: dict | None = None) -> dict:
    """One stage of a config with its defaults filled in."""
    entry = entry or {}
    retry_defaults = {key: spec["default"] for key, spec in RETRY_SCHEMA["properties"].items()}
    return {
        "name": name,
        "params": {**REGISTRY[name].defaults(), **entry.get("params", {})},
        "retry": {**retry_defaults, **entry.get("retry", {})},
    }
