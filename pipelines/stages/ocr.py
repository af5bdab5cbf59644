"""Text of scans and photos: pages Tesseract reads (``pipelines.ocr``), chosen by the job's mode.

- ``fast``: the text layer only; nothing is rendered or read.
- ``standard`` (default): the text layer, and OCR for the pages whose text layer is empty or
  scores as garbage (``quality.assess``), and for images; a text-layer PDF costs no OCR at all.
- ``accurate``: every page is read, and each keeps the better of its text layer and its OCR.
- ``ocr``: every page is read; the text layer is ignored.

Each page OCR reads is read with the configured languages, and again with the language that
first reading is in (identified as the language stage does) when that language's data is
installed but was not among them: a French scan read with ``eng`` (the default OCR_LANGUAGES)
gets its accents where ``tesseract-ocr-fra`` is installed. A page read with little confidence whose
script (Tesseract's script detection) none of the languages is written in is read again with the
installed languages of that script: a Russian page on an ``eng`` server with ``rus`` installed.
Documents without pages (DOCX, HTML, text) pass through with their extracted text.
"""

from collections.abc import Iterator

from pipelines import detection, markdown, ocr
from pipelines.stages.base import StageContext, StageError, stage
from pipelines.stages.language import identify
from pipelines.stages.quality import assess

MIN_LAYER_CHARS = 16  # fewer visible characters than this: the page has no real text layer (a scan)
GARBAGE_SCORE = 0.5  # a text layer scoring below this is read again by OCR in ``standard`` mode
SECOND_PASS_MIN_CHARS = 40  # a first reading this long tells its language
SECOND_PASS_MIN_CONFIDENCE = 0.8
SCRIPT_CHECK_CONFIDENCE = 60  # a first reading less confident than this: is the page in another script?


@stage(
    name="ocr",
    description="Reads scans and photos with Tesseract: PDF pages rendered at `dpi`, PNG/JPEG/TIFF/WebP images. "
    "The job's mode chooses the pages: fast (none), standard (pages whose text layer is empty or garbage, and "
    "images), accurate (every page, keeping the better of text layer and OCR), ocr (every page, OCR only). "
    "Gives each page's text, source, OCR confidence and quality score.",
    params={
        "languages": {
            "type": "array",
            "minItems": 1,
            "maxItems": 8,
            "uniqueItems": True,
            "items": {"type": "string", "pattern": ocr.LANGUAGE_CODE},
            "description": "Tesseract language codes (eng, fra, deu, ...); by default the server's OCR_LANGUAGES.",
        },
        "dpi": {"type": "integer", "minimum": 72, "maximum": 600, "default": 300},
        "max_pages": {
            "type": "integer",
            "minimum": 1,
            "maximum": 10000,
            "default": 500,
            "description": "Most pages OCR may read in one document.",
        },
        "page_timeout_seconds": {"type": "integer", "minimum": 1, "maximum": 3600, "default": 120},
        "second_pass": {
            "type": "boolean",
            "default": True,
            "description": "Read a page again with the language its first reading is in (identified as the "
            "language stage does), or, when read with little confidence, with the languages of the script it is "
            "written in (Tesseract's script detection), where their data is installed and was not used.",
        },
    },  # fmt: skip
    needs=("extract_text",),
    warm=ocr.warm,
)
def run(context: StageContext, params: dict) -> dict:
    extracted = context.require("extract_text")
    mime_type = context.require("detect")["mime_type"]
    layer = extracted.get("pages")
    if layer is None:  # no pages: DOCX, HTML, text
        return {"text": extracted["text"], "markdown": extracted.get("markdown", ""), "pages": [], "ocr_pages": 0}
    image = mime_type in detection.IMAGES
    plan = [_reads(text, context.mode, image=image) for text in layer]
    if sum(plan) > params["max_pages"]:
        raise StageError("too_many_pages", f"{sum(plan)} pages need OCR; the limit is {params['max_pages']}.")
    languages = params.get("languages") or ocr.default_languages()
    pages = []
    for number, (text, picture) in enumerate(zip(layer, _pictures(context, image, plan, params["dpi"]),
                                                 strict=True), start=1):  # fmt: skip
        page = page_result(number, text, "text_layer")
        if picture is not None:
            read_page = _read(number, picture, languages, params)
            if context.mode == "ocr" or image or read_page["quality_score"] > page["quality_score"]:
                page = read_page
            else:
                page["ocr_confidence"] = read_page["ocr_confidence"]  # read, and the text layer was better
        pages.append(page)
    texts = [page["text"] for page in pages]
    return {
        "text": "\n\n".join(texts),
        "pages": pages,
        "markdown": markdown.pages(texts) if any(plan) else extracted.get("markdown", ""),
        "ocr_pages": sum(plan),
        "languages": languages if any(plan) else [],
        "dpi": params["dpi"] if any(plan) else None,
    }


def _read(number: int, picture, languages: list[str], params: dict) -> dict:
    """The page as OCR reads it with ``languages``; with ``second_pass``, read again with the
    language of that first reading put first (``_other_languages``) or, when Tesseract was not
    confident, with the languages of the page's script (``_script_languages``), keeping the
    reading Tesseract is more confident of."""
    text, confidence = ocr.recognize(picture, languages, timeout_seconds=params["page_timeout_seconds"])
    page = {**page_result(number, text, "ocr", confidence), "languages": languages}
    if not params["second_pass"]:
        return page
    again = _other_languages(text, languages)
    if again is None and confidence < SCRIPT_CHECK_CONFIDENCE:
        again = _script_languages(picture, languages)
    if again is None:
        return page
    text, confidence = ocr.recognize(picture, again, timeout_seconds=params["page_timeout_seconds"])
    if confidence <= page["ocr_confidence"]:
        return page
    return {**page_result(number, text, "ocr", confidence), "languages": again}


def _other_languages(text: str, languages: list[str]) -> list[str] | None:
    """``languages`` with the one ``text`` is in first, if that one is installed and not among them."""
    if len(text) < SECOND_PASS_MIN_CHARS:
        return None
    code, confidence = identify(text)
    detected = ocr.TESSERACT_CODES.get(code or "")
    if confidence < SECOND_PASS_MIN_CONFIDENCE or detected is None or detected in languages:
        return None
    return [detected, *languages] if detected in ocr.installed_languages() else None


def _script_languages(picture, languages: list[str]) -> list[str] | None:
    """For a page read with little confidence: the installed languages of the script it is written
    in (Tesseract's script detection), when none of ``languages`` is of that script."""
    written = ocr.SCRIPT_LANGUAGES.get(ocr.script(picture) or "", ())
    if not written or set(written) & set(languages):
        return None
    installed = [code for code in written if code in ocr.installed_languages()][:2]
    return installed or None


def _reads(layer_text: str, mode: str, *, image: bool) -> bool:
    """Whether OCR reads this page."""
    if mode == "fast":
        return False
    if mode in ("ocr", "accurate") or image:
        return True
    visible = sum(not ch.isspace() for ch in layer_text)
    return visible < MIN_LAYER_CHARS or assess(layer_text)["quality_score"] < GARBAGE_SCORE


def page_result(number: int, text: str, source: str, confidence: int | None = None) -> dict:
    """One page of a document's result (``metadata.files[i].pages``)."""
    return {"number": number, "text": text, "source": source, "ocr_confidence": confidence, "chars": len(text),
            "quality_score": assess(text)["quality_score"]}  # fmt: skip


def _pictures(context: StageContext, image: bool, plan: list[bool], dpi: int) -> Iterator:
    """Per page, the picture OCR reads (None for a page it does not): a PDF page rendered at
    ``dpi``, or an image's frame. Nothing is opened when no page is read."""
    if not any(plan):
        yield from (None for _ in plan)
        return
    if image:
        with ocr.opened_image(context.read()) as opened:
            for frame, read in zip(ocr.frames(opened), plan, strict=False):
                yield frame if read else None
        return
    import pypdfium2

    document = pypdfium2.PdfDocument(context.read())
    try:
        for index, read in enumerate(plan):
            if not read:
                yield None
                continue
            page = document[index]
            try:
                yield ocr.render(page, dpi)
            finally:
                page.close()
    finally:
        document.close()
