"""Running a pipeline's stages over one document: plain code over a config and a file on
local disk. No ORM and no storage: the worker (``jobs.engine``) hands it a local path and
records what it returns, here in the worker process or in a parser child
(``pipelines.isolation``), where a crash or a hang cannot take the worker down.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pipelines.stages import REGISTRY, StageContext, StageError
from pipelines.stages.base import read_out
from pipelines.stages.ocr import page_result

logger = logging.getLogger(__name__)

BULKY_OUTPUTS = ("text", "pages", "markdown")  # kept in the job's result, not in each file's stage record


@dataclass(frozen=True)
class Document:
    """A document to run stages on: a file on local disk and the name the client gave it."""

    path: str
    file_name: str
    size: int
    mode: str = "standard"  # the job's (pipelines.ocr.MODES)

    def context(self) -> StageContext:
        return StageContext(file_name=self.file_name, size=self.size, mode=self.mode,
                            open=lambda: open(self.path, "rb"))  # noqa: SIM115  # fmt: skip


@dataclass
class DocumentResult:
    outputs: dict[str, dict] = field(default_factory=dict)  # every stage's full output, by stage name
    record: dict[str, dict] = field(default_factory=dict)  # per stage: times and output without bulky parts


def run_document(
    stages: list[dict], document: Document, *, on_stage: Callable[[int, str], None] | None = None
) -> DocumentResult:
    """Runs ``stages`` (normalized specs, fetch excluded) in order on ``document``;
    ``on_stage(index, name)`` is called as each begins. Raises ``StageError`` (its ``stage``
    set) for a document that cannot be processed; transient errors are retried per the
    stage's ``retry`` first."""
    context, result = document.context(), DocumentResult()
    for index, spec in enumerate(stages):
        if on_stage is not None:
            on_stage(index, spec["name"])
        began, started_at = time.monotonic(), _now()
        try:
            output = run_stage(spec, context)
        except StageError as error:
            error.record = result.record
            raise
        context.outputs[spec["name"]] = output
        result.outputs[spec["name"]] = output
        result.record[spec["name"]] = {
            "started_at": started_at,
            "ended_at": _now(),
            "duration_ms": int((time.monotonic() - began) * 1000),
            "output": slim(output),
        }
    return result


def warm() -> None:
    """Loads every registered stage's libraries and models (``Stage.warm``)."""
    for stage in REGISTRY.values():
        if stage.warm is not None:
            stage.warm()


def run_stage(spec: dict, context: StageContext) -> dict:
    stage = REGISTRY[spec["name"]]
    return with_retries(spec["name"], spec["retry"], lambda: stage.run(context, spec["params"]))


def with_retries(name: str, retry: dict, call):
    """``call()``, retried with exponential backoff while it raises a transient ``StageError``."""
    for attempt in range(1, retry["attempts"] + 1):
        try:
            return call()
        except StageError as error:
            error.stage = name
            if not error.transient or attempt == retry["attempts"]:
                raise
            delay = retry["backoff_seconds"] * 2 ** (attempt - 1)
            logger.warning("stage %s: %s; retry %d in %.1f s", name, error.message, attempt, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def slim(output: dict) -> dict:
    return {key: value for key, value in output.items() if key not in BULKY_OUTPUTS}


def _now() -> str:
    return datetime.now(UTC).isoformat()


def summarize(documents: list[tuple[dict, dict[str, dict]]]) -> dict:
    """A job's result from its documents' ``(identity, outputs)``: the texts joined, each
    document's identity and slimmed stage outputs, the mean quality score."""
    texts = [read_out(outputs).get("text", "") for _, outputs in documents]
    renderings = [read_out(outputs).get("markdown", "") for _, outputs in documents]
    scores = [outputs["quality"]["quality_score"] for _, outputs in documents if "quality" in outputs]
    return {
        "text": "\n\n".join(text for text in texts if text),
        "markdown": "\n\n---\n\n".join(rendering for rendering in renderings if rendering),
        "result_metadata": {
            "files": [
                {**identity, **{name: slim(output) for name, output in outputs.items()}, **_pages(outputs)}
                for identity, outputs in documents
            ]
        },
        "quality_score": sum(scores) / len(scores) if scores else None,
    }


def _pages(outputs: dict[str, dict]) -> dict:
    """``{"pages": [{number, text, source, ocr_confidence, chars, quality_score}]}`` for a
    document with pages (PDF, image): the ``ocr`` stage's, or the text layer's; ``{}`` otherwise."""
    if outputs.get("ocr", {}).get("pages"):
        return {"pages": outputs["ocr"]["pages"]}
    layer = outputs.get("extract_text", {}).get("pages")
    if not layer:
        return {}
    return {"pages": [page_result(number, text, "text_layer") for number, text in enumerate(layer, start=1)]}
