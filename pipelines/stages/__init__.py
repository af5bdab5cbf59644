"""The stage registry: every stage module registers itself on import."""

from pipelines.stages import checksum, detect, extract_text, fetch, language, noop, ocr, quality  # noqa: F401
from pipelines.stages.base import REGISTRY, Stage, StageContext, StageError

__all__ = ["REGISTRY", "Stage", "StageContext", "StageError"]
