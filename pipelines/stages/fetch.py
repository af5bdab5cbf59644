from django.conf import settings

from pipelines.stages.base import StageContext, StageError, stage


@stage(
    name="fetch",
    description="Downloads a url source (http/https, public addresses only, redirects checked, size and time "
    "capped). Runs first, before the document's stages; its parameters tune the download.",
    params={
        "max_bytes": {"type": "integer", "minimum": 1, "maximum": 2**40, "description": "Default FETCH_MAX_SIZE."},
        "timeout_seconds": {"type": "number", "minimum": 1, "maximum": 600, "description": "Default FETCH_TIMEOUT."},
    },
)
def run(context: StageContext, params: dict) -> dict:
    """Never called per document: the engine downloads a url job's input with ``limits(params)``
    before the other stages run (see jobs.engine), so a file that exists is never fetched twice."""
    raise StageError("fetch_position", "fetch runs before the document's stages, for url sources only.")


def limits(params: dict) -> tuple[int, float]:
    return params.get("max_bytes", settings.FETCH_MAX_SIZE), params.get("timeout_seconds", settings.FETCH_TIMEOUT)
