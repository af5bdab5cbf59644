"""Content type from the bytes, never from the name or the client's claim.

Binary formats are recognised by their signatures (puremagic); anything else must
decode as text (charset-normalizer) and is then HTML or JSON by its content, or
Markdown/CSV/plain text - the only place the file name helps, once the bytes have
shown the file is text. Used to validate uploads and by the pipeline's detect stage.
"""

import json
from dataclasses import dataclass

import puremagic
from charset_normalizer import from_bytes

HEAD_SIZE = 64 * 1024  # enough for every signature we accept (a DOCX names word/ in its first entries)

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
HTML = "text/html"
JSON = "application/json"
MARKDOWN = "text/markdown"
CSV = "text/csv"
TEXT = "text/plain"
PNG = "image/png"
JPEG = "image/jpeg"
TIFF = "image/tiff"
WEBP = "image/webp"

IMAGES = (PNG, JPEG, TIFF, WEBP)  # scans and photos of pages: their text comes from OCR
SUPPORTED = (PDF, DOCX, HTML, JSON, MARKDOWN, CSV, TEXT, *IMAGES)
_BINARY = {PDF, DOCX, *IMAGES}
_TEXT_BY_EXTENSION = {".md": MARKDOWN, ".markdown": MARKDOWN, ".csv": CSV}


@dataclass(frozen=True, slots=True)
class Detection:
    mime_type: str
    encoding: str | None = None  # for text


def detect(head: bytes, name: str = "") -> Detection | None:
    """The type of a file from its first bytes (``HEAD_SIZE``); None if it is none we process."""
    if not head:
        return None
    try:
        sniffed = puremagic.from_string(head, mime=True)
    except puremagic.PureError:
        sniffed = ""
    if sniffed in _BINARY:
        return Detection(sniffed)
    if b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return None  # binary, and not a format we accept (an image, an archive, an executable...)
    best = from_bytes(head).best()
    if best is None:
        return None
    text = str(best)
    return Detection(_text_type(text, name), best.encoding)


def _text_type(text: str, name: str) -> str:
    start = text.lstrip("\ufeff \t\r\n")[:1024].lower()
    if start.startswith(("<!doctype html", "<html")) or ("<html" in start and "<body" in text.lower()):
        return HTML
    if start[:1] in ("{", "["):
        try:
            json.loads(text)
            return JSON
        except ValueError:
            pass  # truncated head, or not JSON: fall through to the name
    extension = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if extension == ".json" and start[:1] in ("{", "["):
        return JSON
    return _TEXT_BY_EXTENSION.get(extension, TEXT)
