"""Validating a pipeline config against the stage registry, and its JSON Schema.

A config is ``{"stages": [{"name": "<stage>", "params": {...}, "retry": {...}}, ...]}``.
Errors come back keyed by the path of the bad field (``config.stages[1].params.max_pages``),
ready for a 400 response. Everything the validation checks is in the published schema
(``config_schema_components``): the order rules are not errors but resolved by ``normalized``
(``fetch`` runs first; a stage's prerequisites are added before it when missing).
"""

from jsonschema import Draft202012Validator, validators

from pipelines.stages import REGISTRY

DEFAULT_CONFIG = {"stages": [{"name": "detect"}, {"name": "extract_text"}, {"name": "ocr"}, {"name": "language"},
                             {"name": "quality"}]}  # fmt: skip
RETRY_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "attempts": {"type": "integer", "minimum": 1, "maximum": 10, "default": 3},
        "backoff_seconds": {"type": "number", "minimum": 0, "maximum": 300, "default": 1},
        "crashes": {
            "type": "boolean",
            "default": False,
            "description": "Also retry (in a fresh parser process) when the parser process crashes or the stage "
            "times out. Off by default: a document that crashes a parser usually crashes it again.",
        },
    },
}
# JSON Schema counts 1.0 as an integer; stages would then get a float where they slice or count.
_INTEGERS = Draft202012Validator.TYPE_CHECKER.redefine(
    "integer", lambda _checker, value: isinstance(value, int) and not isinstance(value, bool)
)
Validator = validators.extend(Draft202012Validator, type_checker=_INTEGERS)
TIMEOUT_SCHEMA = {
    "type": "integer",
    "minimum": 1,
    "maximum": 86400,
    "default": 300,
    "description": "Seconds the stage may run on one document (retries included) before the job fails with "
    "stage_timeout. Enforced by the project's worker class, which runs stages in a killable child process; "
    "the whole job is also bounded by the service's RQ_DEFAULT_TIMEOUT (job_timeout). Not used by fetch, "
    "whose params.timeout_seconds bounds each network read.",
}
_STAGE_KEYS = {"name", "params", "retry", "timeout_seconds"}
MAX_STAGES = 50


def validate_config(config) -> dict[str, list[str]]:
    """The errors of ``config`` by field path; empty when it is valid."""
    if not isinstance(config, dict):
        return {"config": ["Must be an object with a list of stages."]}
    errors: dict[str, list[str]] = {}
    for key in sorted(set(config) - {"stages"}):
        errors.setdefault(f"config.{key}", []).append("Unknown field.")
    stages = config.get("stages")
    if not isinstance(stages, list) or not 1 <= len(stages) <= MAX_STAGES:
        errors["config.stages"] = [f"Must be a list of 1 to {MAX_STAGES} stages."]
        return errors
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
        _check(stage.params_schema, entry.get("params", {}), f"{path}.params", errors)
        _check(RETRY_SCHEMA, entry.get("retry", {}), f"{path}.retry", errors)
        if "timeout_seconds" in entry:
            _check(TIMEOUT_SCHEMA, entry["timeout_seconds"], f"{path}.timeout_seconds", errors)
    return errors


def _check(schema: dict, value, path: str, errors: dict) -> None:
    for error in Validator(schema).iter_errors(value):
        where = ".".join([path, *(str(part) for part in error.absolute_path)])
        if error.validator == "additionalProperties":
            message = "Unknown parameter: " + ", ".join(sorted(set(error.instance) - set(schema["properties"])))
        else:
            message = error.message
        errors.setdefault(where, []).append(message)


def normalized(config: dict) -> dict:
    """A valid config as a job runs it: ``fetch`` (its first mention) first, every stage
    preceded by the stages it needs (added with their defaults when missing), every default
    filled in."""
    entries = config["stages"]
    fetch = next((entry for entry in entries if entry["name"] == "fetch"), None)
    stages = [stage_spec("fetch", fetch)] if fetch is not None else []
    present: set[str] = set()
    for entry in entries:
        if entry["name"] != "fetch":
            _append_with_needs(entry["name"], entry, stages, present)
    return {"stages": stages}


def _append_with_needs(name: str, entry: dict | None, stages: list[dict], present: set[str]) -> None:
    for need in REGISTRY[name].needs:
        if need not in present:
            _append_with_needs(need, None, stages, present)
    stages.append(stage_spec(name, entry))
    present.add(name)


def stage_spec(name: str, entry: dict | None = None) -> dict:
    """One stage of a config with its defaults filled in."""
    entry = entry or {}
    retry_defaults = {key: spec["default"] for key, spec in RETRY_SCHEMA["properties"].items()}
    return {
        "name": name,
        "params": {**REGISTRY[name].defaults(), **entry.get("params", {})},
        "retry": {**retry_defaults, **entry.get("retry", {})},
        "timeout_seconds": entry.get("timeout_seconds", TIMEOUT_SCHEMA["default"]),
    }


def _component_name(stage_name: str) -> str:
    return "".join(part.title() for part in stage_name.split("_")) + "Stage"


def config_schema_components() -> dict[str, dict]:
    """OpenAPI components for a config: ``PipelineConfig``, ``PipelineStage`` (one of the
    registered stages, by ``name``), one ``<Name>Stage`` per stage with its parameters'
    schema, and ``StageRetry``. Built from the registry, so a new stage is published as-is."""
    ref = "#/components/schemas/{}".format
    components = {"StageRetry": RETRY_SCHEMA}
    mapping = {}
    for name, stage in sorted(REGISTRY.items()):
        component = _component_name(name)
        mapping[name] = ref(component)
        components[component] = {
            "type": "object",
            "description": stage.description,
            "required": ["name"],
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string", "enum": [name]},
                "params": stage.params_schema,
                "retry": {"$ref": ref("StageRetry")},
                "timeout_seconds": TIMEOUT_SCHEMA,
            },
        }
    components["PipelineStage"] = {
        "oneOf": [{"$ref": target} for target in mapping.values()],
        "discriminator": {"propertyName": "name", "mapping": mapping},
    }
    components["PipelineConfig"] = {
        "type": "object",
        "description": "The stages to run, in order. `fetch` always runs first; a stage's prerequisites "
        "(`needs` in GET /pipelines/stages) are added before it when missing.",
        "required": ["stages"],
        "additionalProperties": False,
        "properties": {
            "stages": {"type": "array", "minItems": 1, "maxItems": MAX_STAGES, "items": {"$ref": ref("PipelineStage")}}
        },
    }
    return components
