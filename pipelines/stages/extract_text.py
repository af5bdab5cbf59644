"""Text out of PDF (pypdfium2), DOCX (python-docx), HTML (lxml) and text formats.

Every format has limits (pages, output size, decompressed size) that end in a clear
``StageError``, never a crashed or hung worker.
"""

import csv
import importlib
import io
import json

from charset_normalizer import from_bytes

from pipelines import archives, detection, markdown, ocr
from pipelines.stages.base import StageContext, StageError, stage

MiB = 1024 * 1024
_BLOCK_TAGS = ("address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption", "footer",
               "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre",
               "section", "table", "td", "th", "title", "tr", "ul")  # fmt: skip


def _load_parsers() -> None:
    for module in ("pypdfium2", "docx", "lxml.html"):  # imported by the extractors, on first use otherwise
        importlib.import_module(module)


@stage(
    name="extract_text",
    description="Extracts the text: PDF per page (the text layer), DOCX paragraphs and tables, HTML readable "
    "text, text files decoded with their detected encoding; images have no text layer (see ocr).",
    params={
        "max_pages": {"type": "integer", "minimum": 1, "maximum": 100000, "default": 2000},
        "max_chars": {"type": "integer", "minimum": 1, "maximum": 200_000_000, "default": 50_000_000},
        "max_decompressed_mb": {"type": "integer", "minimum": 1, "maximum": 10240, "default": 512},
    },
    needs=("detect",),
    warm=_load_parsers,
)
def run(context: StageContext, params: dict) -> dict:
    mime_type = context.require("detect")["mime_type"]
    extractor = _EXTRACTORS.get(mime_type)
    if extractor is None:
        raise StageError("unsupported_type", f"No text extractor for {mime_type}.")
    result = extractor(context, params)
    if len(result["text"]) > params["max_chars"]:
        raise StageError("output_too_large", f"The extracted text exceeds {params['max_chars']} characters.")
    result["chars"] = len(result["text"])
    return {"format": mime_type, **result}


def _pdf(context: StageContext, params: dict) -> dict:
    import pypdfium2

    try:
        document = pypdfium2.PdfDocument(context.read())
    except pypdfium2.PdfiumError as exc:
        raise StageError("invalid_document", f"The PDF cannot be read: {exc}.") from None
    try:
        page_count = len(document)
        if page_count > params["max_pages"]:
            raise StageError("too_many_pages", f"The PDF has {page_count} pages; the limit is {params['max_pages']}.")
        pages = []
        for index in range(page_count):
            page = document[index]
            text_page = page.get_textpage()
            pages.append(text_page.get_text_range().replace("\r\n", "\n"))
            text_page.close()
            page.close()
    finally:
        document.close()
    return {"text": "\n\n".join(pages), "pages": pages, "page_count": page_count,
            "markdown": markdown.pages(pages)}  # fmt: skip


def _image(context: StageContext, params: dict) -> dict:
    """An image has no text layer: its pages (a TIFF's frames) are counted for the ``ocr`` stage."""
    with ocr.opened_image(context.read()) as image:
        page_count = getattr(image, "n_frames", 1)
    if page_count > params["max_pages"]:
        raise StageError("too_many_pages", f"The image has {page_count} pages; the limit is {params['max_pages']}.")
    return {"text": "", "pages": [""] * page_count, "page_count": page_count, "markdown": ""}


def _docx(context: StageContext, params: dict) -> dict:
    import docx

    # Every member inflated and counted first: python-docx then inflates no more than that.
    checked = archives.checked_zip(context.read(), limit_bytes=params["max_decompressed_mb"] * MiB, kind="DOCX")
    try:
        document = docx.Document(checked)
    except Exception as exc:  # python-docx raises assorted errors on malformed parts
        raise StageError("invalid_document", f"The DOCX cannot be read: {exc}.") from None
    blocks = [paragraph.text for paragraph in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            blocks.append("\t".join(cell.text for cell in row.cells))
    return {"text": "\n".join(blocks), "paragraphs": len(document.paragraphs), "tables": len(document.tables),
            "markdown": markdown.docx(document)}  # fmt: skip


def _decode(context: StageContext, params: dict) -> str:
    data = context.read(params["max_chars"] * 4 + 4)
    encoding = context.outputs.get("detect", {}).get("encoding")
    try:
        return data.decode(encoding or "utf-8")
    except (LookupError, UnicodeDecodeError):
        best = from_bytes(data).best()
        if best is None:
            raise StageError("undecodable_text", "The text's encoding cannot be determined.") from None
        return str(best)


def _html(context: StageContext, params: dict) -> dict:
    import lxml.html

    source = _decode(context, params)
    try:
        tree = lxml.html.document_fromstring(source)
    except Exception as exc:  # lxml raises ParserError / ValueError on empty or broken markup
        raise StageError("invalid_document", f"The HTML cannot be parsed: {exc}.") from None
    for element in tree.xpath("//script|//style|//noscript|//template"):
        element.drop_tree()
    rendered = markdown.html(tree)  # before the block tails below, which are not markup
    for element in tree.iter(*_BLOCK_TAGS):  # a block ends a line, as a browser shows it
        element.tail = "\n" + (element.tail or "")
    title = (tree.findtext(".//title") or "").strip()
    lines = (line.strip() for line in tree.text_content().splitlines())
    return {"text": "\n".join(line for line in lines if line), "title": title, "markdown": rendered}


def _text(context: StageContext, params: dict) -> dict:
    text = _decode(context, params)
    mime_type = context.require("detect")["mime_type"]
    if mime_type == detection.MARKDOWN:
        rendered = text
    elif mime_type == detection.CSV:
        rendered = markdown.table(list(csv.reader(io.StringIO(text))))
    else:
        rendered = markdown.escape(text)
    return {"text": text, "markdown": rendered}


def _json(context: StageContext, params: dict) -> dict:
    text = _decode(context, params)
    try:
        json.loads(text)
    except ValueError as exc:
        raise StageError("invalid_document", f"The JSON is malformed: {exc}.") from None
    return {"text": text, "markdown": f"```json\n{text}\n```"}


_EXTRACTORS = {
    detection.PDF: _pdf,
    detection.DOCX: _docx,
    detection.HTML: _html,
    detection.JSON: _json,
    detection.MARKDOWN: _text,
    detection.CSV: _text,
    detection.TEXT: _text,
    **dict.fromkeys(detection.IMAGES, _image),
}
