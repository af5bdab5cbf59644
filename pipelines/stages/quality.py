"""How usable the extracted text is: counts and a ``quality_score`` in 0..1.

The score is the product of three factors, each 1.0 for ordinary prose: words of a
plausible length (text extracted without spaces has very long "words"), no mojibake
(replacement characters, UTF-8 read as Latin-1), and mostly letters rather than symbols.
"""

import re

from pipelines.stages.base import StageContext, stage

_MOJIBAKE = re.compile("\ufffd|Ã[\x80-\xbf]|Â[\x80-\xbf ]|â€")


@stage(
    name="quality",
    description="Word, line and character counts and a quality_score in 0..1 that drops for text without "
    "spaces, mojibake or mostly symbols.",
    needs=("extract_text",),
)
def run(context: StageContext, params: dict) -> dict:
    return assess(context.text())


def assess(text: str) -> dict:
    words = text.split()
    visible = sum(len(word) for word in words)
    counts = {"chars": len(text), "words": len(words), "lines": text.count("\n") + 1 if text else 0}
    if not visible:
        return {**counts, "quality_score": 0.0, "signals": {}}
    mean_word = visible / len(words)
    letters = sum(ch.isalpha() for ch in text) / visible
    mojibake = len(_MOJIBAKE.findall(text)) / visible
    signals = {
        "spacing": 1.0 if mean_word <= 12 else max(0.0, 1 - (mean_word - 12) / 20),
        "encoding": max(0.0, 1 - 25 * mojibake),
        "letters": min(1.0, letters / 0.6),
    }
    score = signals["spacing"] * signals["encoding"] * signals["letters"]
    return {
        **counts,
        "quality_score": round(score, 4),
        "signals": {name: round(value, 4) for name, value in signals.items()},
        "mean_word_length": round(mean_word, 2),
    }
