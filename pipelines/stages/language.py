from functools import cache

from pipelines.stages.base import StageContext, stage


@cache
def _identifier():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier  # the model ships inside the package

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


@stage(
    name="language",
    description="Language of the extracted text (ISO 639-1) with a confidence in 0..1 (py3langid).",
    params={"sample_chars": {"type": "integer", "minimum": 100, "maximum": 1_000_000, "default": 20_000}},
    needs=("extract_text",),
    warm=_identifier,
)
def run(context: StageContext, params: dict) -> dict:
    language, confidence = identify(context.text()[: params["sample_chars"]])
    return {"language": language, "confidence": confidence}


def identify(text: str) -> tuple[str | None, float]:
    """``(ISO 639-1 code, confidence 0..1)`` of ``text``; ``(None, 0.0)`` for text without letters."""
    if not any(ch.isalpha() for ch in text):
        return None, 0.0
    language, confidence = _identifier().classify(text)
    return language, round(float(confidence), 4)
