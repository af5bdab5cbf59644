import hashlib
import io
import zipfile

import pytest

from pipelines.stages import REGISTRY, StageContext, StageError
from tests.pipelines.documents import docx, pdf

LONG_FR = "Le document décrit les résultats trimestriels de la société et les perspectives pour l'année. " * 5


def context(data: bytes, name: str = "doc", outputs=None) -> StageContext:
    return StageContext(file_name=name, size=len(data), open=lambda: io.BytesIO(data), outputs=outputs or {})


def run(stage: str, data: bytes, name: str = "doc", **params):
    """Runs ``stage`` after the stages it needs, as a pipeline would."""
    ctx = context(data, name)
    order = {"extract_text": ["detect"], "language": ["detect", "extract_text"], "quality": ["detect", "extract_text"]}
    for earlier in order.get(stage, []):
        ctx.outputs[earlier] = REGISTRY[earlier].run(ctx, REGISTRY[earlier].defaults())
    return REGISTRY[stage].run(ctx, {**REGISTRY[stage].defaults(), **params})


def test_checksum():
    assert run("checksum", b"abc") == {"algorithm": "sha256", "sha256": hashlib.sha256(b"abc").hexdigest(), "size": 3}


@pytest.mark.parametrize(
    "data, name, mime_type",
    [
        (pdf(["x"]), "a.txt", "application/pdf"),
        (docx(["x"]), "a.pdf", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
        (b"<!DOCTYPE html><html><body>x</body></html>", "a.txt", "text/html"),
        (b'{"a": [1, 2]}', "a", "application/json"),
        (b"a,b\n1,2\n", "a.csv", "text/csv"),
        ("Grüße".encode("utf-16"), "a.txt", "text/plain"),
    ],
)
def test_detect_reads_the_bytes(data, name, mime_type):
    assert run("detect", data, name)["mime_type"] == mime_type


def test_detect_refuses_what_it_cannot_process():
    with pytest.raises(StageError) as error:
        run("detect", b"GIF89a" + bytes(32))
    assert error.value.code == "unsupported_type"


def test_extract_text_from_pdf_per_page():
    out = run("extract_text", pdf(["First page text", "Second page text"]))
    assert out["pages"] == ["First page text", "Second page text"] and out["page_count"] == 2
    assert out["text"] == "First page text\n\nSecond page text" and out["format"] == "application/pdf"


def test_extract_text_from_docx_paragraphs_and_tables():
    out = run("extract_text", docx(["Hello", "World"], table=[["Name", "Qty"], ["Bolt", "4"]]))
    assert out["text"] == "Hello\nWorld\nName\tQty\nBolt\t4" and out["tables"] == 1


def test_extract_text_from_html_drops_scripts_and_styles():
    html = b"<html><head><title>T</title><style>p{}</style><script>var x=1</script></head><body><p>Readable</p>" \
           b"<p>text</p></body></html>"  # fmt: skip
    out = run("extract_text", html, "a.html")
    assert out["text"] == "T\nReadable\ntext" and out["title"] == "T" and "var x" not in out["text"]


def test_extract_text_decodes_legacy_encodings():
    text = "Ça coûte très cher, à mon avis, élevé et déraisonnable pour une réunion."
    assert run("extract_text", text.encode("cp1252"), "a.txt")["text"] == text


def test_limits_end_in_clear_errors():
    with pytest.raises(StageError) as error:
        run("extract_text", pdf(["a", "b", "c"]), max_pages=2)
    assert error.value.code == "too_many_pages"
    with pytest.raises(StageError) as error:
        run("extract_text", b"x" * 100, "a.txt", max_chars=10)
    assert error.value.code == "output_too_large"


def test_a_docx_bomb_is_refused_before_unpacking():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", b"\0" * (3 * 1024 * 1024))
    ctx = context(buffer.getvalue(), "bomb.docx", {"detect": {"mime_type": "application/vnd.openxmlformats-"
                                                             "officedocument.wordprocessingml.document"}})  # fmt: skip
    with pytest.raises(StageError) as error:
        REGISTRY["extract_text"].run(ctx, {**REGISTRY["extract_text"].defaults(), "max_decompressed_mb": 1})
    assert error.value.code == "too_large_decompressed"


def test_broken_documents_fail_clearly():
    with pytest.raises(StageError) as error:
        run("extract_text", b"%PDF-1.4\nthis is not really a pdf")
    assert error.value.code == "invalid_document"


def test_language():
    assert run("language", LONG_FR.encode(), "a.txt")["language"] == "fr"
    assert run("language", b"1234 5678", "a.txt") == {"language": None, "confidence": 0.0}


@pytest.mark.parametrize(
    "text, expected",
    [
        (LONG_FR, (0.99, 1.0)),
        ("Ledocumentdécritlesrésultatstrimestrielsdelasociété" * 3, (0.0, 0.3)),
        ("Ã©tÃ© trÃ¨s chaud Ã  Paris, câ€™est la vie", (0.0, 0.5)),
        ("#### $$$ %%% &&& *** ((( ))) ++++ ==== ~~~~", (0.0, 0.2)),
        ("", (0.0, 0.0)),
    ],
)
def test_quality_score(text, expected):
    out = run("quality", text.encode() or b" ", "a.txt") if text else None
    if out is None:
        from pipelines.stages.quality import assess

        out = assess("")
    assert expected[0] <= out["quality_score"] <= expected[1]
