"""Optical character recognition with Tesseract: pages of PDFs rendered with pypdfium2, and images.

Tesseract and its language data come from Debian's packages (``tesseract-ocr``,
``tesseract-ocr-<code>``; ``scripts/ensure-ocr.sh`` installs those of ``OCR_LANGUAGES``);
nothing is downloaded at run time. The binding is tesserocr, which keeps the engine and its
models loaded in the process, one engine per language set (``OCR_LANGUAGES``' loaded by ``warm``
in the worker before its parser processes are forked, others on first use): the CLI
(pytesseract) starts a process and loads the models for every page (README, "Design: OCR, modes
and Markdown"). A page past its time limit raises ``StageError("stage_timeout")``.
"""

import glob
import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from pipelines.stages.base import StageError

# One thread per engine: workers already run one document per core, and a forked parser process
# must not inherit an OpenMP thread pool. Read by Tesseract when it loads (tesserocr's import).
os.environ.setdefault("OMP_THREAD_LIMIT", "1")

MODES = {
    "fast": "the text layer only, never OCR",
    "standard": "the text layer; OCR for the pages whose text layer is empty or garbage, and for images",
    "accurate": "OCR every page and keep, per page, the better of the text layer and OCR",
    "ocr": "OCR only, the text layer ignored",
}
DEFAULT_MODE = "standard"
LANGUAGE_CODE = r"^[a-z][a-z_]{1,15}$"  # eng, fra, chi_sim, ...
MAX_RENDER_PIXELS = 60_000_000  # an A0 page at 300 DPI is 140 M: larger pages render at a lower DPI


# ISO 639-1 codes (the language stage's) -> Tesseract's, for the second pass of the ocr stage
TESSERACT_CODES = {
    "af": "afr", "ar": "ara", "bg": "bul", "bn": "ben", "ca": "cat", "cs": "ces", "da": "dan", "de": "deu",
    "el": "ell", "en": "eng", "es": "spa", "et": "est", "eu": "eus", "fa": "fas", "fi": "fin", "fr": "fra",
    "ga": "gle", "gl": "glg", "he": "heb", "hi": "hin", "hr": "hrv", "hu": "hun", "id": "ind", "is": "isl",
    "it": "ita", "ja": "jpn", "ko": "kor", "lt": "lit", "lv": "lav", "mk": "mkd", "ms": "msa", "mt": "mlt",
    "nl": "nld", "no": "nor", "pl": "pol", "pt": "por", "ro": "ron", "ru": "rus", "sk": "slk", "sl": "slv",
    "sq": "sqi", "sr": "srp", "sv": "swe", "th": "tha", "tr": "tur", "uk": "ukr", "vi": "vie", "zh": "chi_sim",
}  # fmt: skip


# Scripts Tesseract's orientation and script detection (osd) names -> languages written in them
SCRIPT_LANGUAGES = {
    "Arabic": ("ara", "fas"), "Bengali": ("ben",), "Cyrillic": ("rus", "ukr", "bul", "srp", "mkd"),
    "Devanagari": ("hin", "mar", "nep"), "Greek": ("ell",), "Han": ("chi_sim", "chi_tra"), "Hangul": ("kor",),
    "Hebrew": ("heb",), "Japanese": ("jpn",), "Katakana": ("jpn",), "Hiragana": ("jpn",), "Thai": ("tha",),
    "Latin": ("eng", "fra", "deu", "spa", "ita", "por", "nld", "pol", "ces", "swe", "dan", "fin", "tur", "ron"),
}  # fmt: skip


def tessdata() -> str:
    """Where the language data is: ``TESSDATA_PREFIX``, else Debian's folder."""
    configured = os.environ.get("TESSDATA_PREFIX")
    if configured:
        return configured.rstrip("/") + "/"
    found = sorted(glob.glob("/usr/share/tesseract-ocr/*/tessdata"))
    return (found[-1] + "/") if found else "/usr/share/tesseract-ocr/5/tessdata/"


def default_languages() -> list[str]:
    from django.conf import settings

    return list(settings.OCR_LANGUAGES)


@lru_cache(maxsize=1)
def _all_languages() -> frozenset[str]:
    import tesserocr

    return frozenset(tesserocr.get_languages(tessdata())[1])


def installed_languages() -> frozenset[str]:
    return _all_languages() - {"osd"}


@lru_cache(maxsize=4)
def _engine(languages: str):
    import tesserocr

    return tesserocr.PyTessBaseAPI(path=tessdata(), lang=languages, psm=tesserocr.PSM.AUTO)


def engine(languages: list[str]):
    """This process's Tesseract engine for ``languages`` (loaded once, then reused)."""
    missing = sorted(set(languages) - installed_languages())
    if missing:
        raise StageError("ocr_language_unavailable",
                         f"No Tesseract language data for {', '.join(missing)} on this server "
                         f"(installed: {', '.join(sorted(installed_languages())) or 'none'}); "
                         "add the language to OCR_LANGUAGES.")  # fmt: skip
    return _engine("+".join(languages))


def warm() -> None:
    """Loads the engine of ``OCR_LANGUAGES`` ahead of the first page (workers call it at start)."""
    try:
        engine(default_languages())
    except StageError:
        pass  # said clearly to the first job that needs it


@lru_cache(maxsize=1)
def _script_detector():
    import tesserocr

    return tesserocr.PyTessBaseAPI(path=tessdata(), lang="osd", psm=tesserocr.PSM.OSD_ONLY)


def script(image) -> str | None:
    """The script ``image`` is written in, as Tesseract's orientation and script detection names
    it (``Latin``, ``Cyrillic``, ``Han``, ...); None when it cannot tell (no osd data, too little text)."""
    if "osd" not in _all_languages():
        return None
    detector = _script_detector()
    detector.SetImage(image)
    try:
        found = detector.DetectOrientationScript()
    except RuntimeError:  # too few characters to tell
        return None
    finally:
        detector.Clear()
    return found.get("script_name") if found else None


def recognize(image, languages: list[str], *, timeout_seconds: float) -> tuple[str, int]:
    """The text of ``image`` (a PIL image) and Tesseract's mean word confidence (0-100)."""
    api = engine(languages)
    api.SetImage(image)
    if not api.Recognize(timeout=int(timeout_seconds * 1000)):
        api.Clear()
        raise StageError("stage_timeout", f"OCR of a page took longer than {timeout_seconds:g} s.")
    text = api.GetUTF8Text()
    confidence = api.MeanTextConf()
    api.Clear()
    return text.strip(), max(confidence, 0)


def render(page, dpi: int):
    """A pypdfium2 page as a greyscale PIL image at ``dpi``, or less for a page so large that it
    would exceed ``MAX_RENDER_PIXELS`` (a poster-sized page must not take the parser's memory)."""
    width, height = page.get_size()  # points: 1/72 inch
    scale = min(dpi / 72, (MAX_RENDER_PIXELS / max(width * height, 1)) ** 0.5)
    bitmap = page.render(scale=scale, grayscale=True)
    try:
        return bitmap.to_pil()
    finally:
        bitmap.close()


@contextmanager
def opened_image(data: bytes):
    """The image file ``data`` opened with Pillow. A corrupt one raises
    ``StageError("invalid_document")``; one past Pillow's decompression-bomb limit (about 179
    megapixels) ``StageError("too_large")``."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            yield image
    except Image.DecompressionBombError as exc:
        raise StageError("too_large", f"The image is too large to OCR: {exc}.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise StageError("invalid_document", f"The image cannot be read: {exc}.") from None


def frames(image) -> Iterator:
    """The pages of an opened image (a multi-page TIFF has several), greyscale."""
    for index in range(getattr(image, "n_frames", 1)):
        image.seek(index)
        yield image.convert("L")
