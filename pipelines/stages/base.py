"""What a pipeline stage is: a name, a JSON Schema for its parameters, and a run function.

A stage reads the document through its ``StageContext`` (never a path on disk: files may
live on S3) and the outputs of the stages before it, and returns its own output (a
JSON-serialisable dict). It raises ``StageError`` for a clear, recorded failure;
``transient=True`` marks errors worth retrying (network, timeouts).
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO


class StageError(Exception):
    def __init__(self, code: str, message: str, *, transient: bool = False):
        super().__init__(message)
        self.code, self.message, self.transient = code, message, transient
        self.stage: str | None = None  # set by the runner: which stage raised it
        self.record: dict[str, dict] = {}  # set by the runner: the stages that ran before it


@dataclass
class StageContext:
    file_name: str
    size: int
    open: Callable[[], BinaryIO]  # a fresh binary stream over the document
    outputs: dict[str, dict] = field(default_factory=dict)  # earlier stages' outputs, by stage name
    mode: str = "standard"  # the job's mode (pipelines.ocr.MODES): how text is read from pages

    def text(self) -> str:
        """The document's text: OCR's when the ``ocr`` stage ran, else the text layer's."""
        if "ocr" not in self.outputs:
            self.require("extract_text")
        return read_out(self.outputs)["text"]

    def read(self, limit: int | None = None) -> bytes:
        with self.open() as stream:
            return stream.read() if limit is None else stream.read(limit)

    def require(self, stage: str) -> dict:
        if stage not in self.outputs:
            raise StageError("missing_input", f"This stage needs the output of '{stage}' earlier in the pipeline.")
        return self.outputs[stage]


def read_out(outputs: dict[str, dict]) -> dict:
    """The output holding a document's text, Markdown and pages: the ``ocr`` stage's when it ran
    (it supersedes the text layer's), else ``extract_text``'s; ``{}`` when neither ran."""
    return outputs.get("ocr") or outputs.get("extract_text") or {}


@dataclass(frozen=True)
class Stage:
    name: str
    description: str
    params_schema: dict
    run: Callable[[StageContext, dict], dict]
    needs: tuple[str, ...] = ()  # stages that must come before this one
    warm: Callable[[], None] | None = None  # loads the stage's libraries and models ahead of the first document

    def defaults(self) -> dict:
        return {
            key: spec["default"] for key, spec in self.params_schema.get("properties", {}).items() if "default" in spec
        }


REGISTRY: dict[str, Stage] = {}


def stage(*, name: str, description: str, params: dict | None = None, needs: tuple[str, ...] = (),
          warm: Callable[[], None] | None = None):  # fmt: skip
    """Registers the decorated ``run(context, params) -> dict`` as a stage. ``warm``, if given,
    loads what the stage needs (imports, models): workers call it once at startup, so that no
    document pays for it."""
    schema = {"type": "object", "additionalProperties": False, "properties": params or {}}

    def register(run):
        REGISTRY[name] = Stage(name, description, schema, run, needs, warm)
        return run

    return register
