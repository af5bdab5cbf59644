"""The ocr stage on real Tesseract (Debian's packages): scans, images of each format, the modes,
per-page results, blank and corrupt input, timeouts and languages."""

import io
from collections import Counter

import pytest

from pipelines import ocr
from pipelines.stages import REGISTRY, StageContext, StageError
from pipelines.stages.quality import assess
from tests.pipelines.documents import image, pdf, scanned_pdf

REPORT = [
    ["The quarterly report shows steady growth", "in every region where the company works."],
    ["Revenue rose by twelve percent over the year", "while costs stayed close to the budget."],
]


def run(data: bytes, mode: str = "standard", **params) -> dict[str, dict]:
    """The default pipeline's stages on ``data`` in ``mode``; every stage's output."""
    ctx = StageContext(file_name="doc", size=len(data), open=lambda: io.BytesIO(data), mode=mode)
    for name in ("detect", "extract_text", "ocr", "quality"):
        ctx.outputs[name] = REGISTRY[name].run(ctx, {**REGISTRY[name].defaults(), **(params if name == "ocr" else {})})
    return ctx.outputs


def similarity(text: str, lines: list[list[str]]) -> float:
    read, truth = Counter(text.split()), Counter(" ".join(" ".join(page) for page in lines).split())
    return sum((read & truth).values()) / max(sum(read.values()), sum(truth.values()))


@pytest.fixture
def no_ocr(monkeypatch):
    """Fails the test if Tesseract is asked to read anything."""

    def refuse(*args, **kwargs):
        raise AssertionError("OCR was called")

    monkeypatch.setattr(ocr, "recognize", refuse)


def test_a_scanned_pdf_is_read_page_by_page(settings):
    out = run(scanned_pdf(pdf(REPORT)))
    assert out["extract_text"]["text"].strip() == ""  # no text layer
    assert similarity(out["ocr"]["text"], REPORT) >= 0.95
    pages = out["ocr"]["pages"]
    assert [(page["number"], page["source"]) for page in pages] == [(1, "ocr"), (2, "ocr")]
    assert all(page["ocr_confidence"] > 70 and page["quality_score"] > 0.8 for page in pages)
    assert pages[1]["chars"] == len(pages[1]["text"]) and "Revenue" in pages[1]["text"]
    assert out["ocr"]["ocr_pages"] == 2 and out["ocr"]["languages"] == settings.OCR_LANGUAGES
    assert out["quality"]["quality_score"] > 0.8  # scored on the OCR text


def test_standard_costs_a_text_layer_pdf_no_ocr_at_all(no_ocr):
    out = run(pdf(REPORT))
    assert out["ocr"]["ocr_pages"] == 0 and out["ocr"]["text"] == out["extract_text"]["text"]
    assert [page["source"] for page in out["ocr"]["pages"]] == ["text_layer", "text_layer"]


def test_standard_reads_only_the_pages_without_a_text_layer():
    out = run(scanned_pdf(pdf(REPORT), keep_text=(1,)))
    assert [page["source"] for page in out["ocr"]["pages"]] == ["text_layer", "ocr"] and out["ocr"]["ocr_pages"] == 1
    assert similarity(out["ocr"]["text"], REPORT) >= 0.95


def test_fast_never_reads(no_ocr):
    out = run(scanned_pdf(pdf(REPORT)), mode="fast")
    assert out["ocr"]["text"].strip() == "" and out["ocr"]["ocr_pages"] == 0
    assert out["quality"]["quality_score"] == 0.0


def test_ocr_mode_reads_every_page_and_ignores_the_text_layer():
    out = run(pdf(REPORT), mode="ocr")
    assert [page["source"] for page in out["ocr"]["pages"]] == ["ocr", "ocr"] and out["ocr"]["ocr_pages"] == 2
    assert similarity(out["ocr"]["text"], REPORT) >= 0.95


def test_accurate_reads_every_page_and_keeps_the_better_text():
    garbled = pdf([["Th3 qu@rt#rly r%p*rt $h&ws st##dy gr@wth ~~ |||| ^^^^ {{}} ####"], REPORT[1]])
    out = run(garbled, mode="accurate")
    pages = out["ocr"]["pages"]
    assert out["ocr"]["ocr_pages"] == 2 and all(page["ocr_confidence"] is not None for page in pages)
    layer = [assess(text)["quality_score"] for text in out["extract_text"]["pages"]]
    assert all(page["quality_score"] >= score for page, score in zip(pages, layer, strict=True))
    assert pages[1]["source"] == "text_layer"  # OCR reads it no better: the text layer wins the tie


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "TIFF", "WEBP"])
def test_images_of_each_format_are_read(fmt):
    lines = ["Invoice number four hundred and two", "due at the end of the month."]
    out = run(image(lines, fmt))
    assert out["detect"]["mime_type"] == f"image/{fmt.lower()}"
    assert similarity(out["ocr"]["text"], [lines]) >= 0.9
    assert out["ocr"]["pages"][0]["source"] == "ocr"


def test_a_multi_page_tiff_gives_a_page_per_frame():
    out = run(image([["First scanned page"], ["Second scanned page"]], "TIFF"))
    assert [page["text"] for page in out["ocr"]["pages"]] == ["First scanned page", "Second scanned page"]


def test_a_page_with_no_text_is_an_empty_result_not_an_error():
    out = run(image([" "], "PNG"))
    page = out["ocr"]["pages"][0]
    assert (page["text"], page["chars"], page["quality_score"]) == ("", 0, 0.0)
    assert out["quality"]["quality_score"] == 0.0


def cyrillic_page() -> bytes:
    """A page of Russian (our PDF builder's font is Latin only: drawn with Debian's DejaVu Sans)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 42)
    page = Image.new("L", (1700, 300), 255)
    draw = ImageDraw.Draw(page)
    for row, line in enumerate(RUSSIAN[0]):
        draw.text((60, 60 + row * 80), line, font=font, fill=0)
    out = io.BytesIO()
    page.save(out, "PNG", dpi=(300, 300))
    return out.getvalue()


RUSSIAN = [["Комитет был предупреждён у самого леса,", "где ученики изучали русский язык."]]


def test_a_page_in_another_script_is_read_again_with_that_script_s_languages(settings):
    page = run(cyrillic_page())["ocr"]["pages"][0]  # read with eng first: little confidence
    assert page["languages"] == ["rus"] and similarity(page["text"], RUSSIAN) >= 0.8
    assert page["ocr_confidence"] > 70
    once = run(cyrillic_page(), second_pass=False)["ocr"]["pages"][0]
    assert once["languages"] == ["eng"] and similarity(once["text"], RUSSIAN) < 0.2


def test_a_corrupt_image_is_an_invalid_document():
    with pytest.raises(StageError) as error:
        run(b"\x89PNG\r\n\x1a\n" + bytes(200))
    assert error.value.code == "invalid_document"


def test_a_page_past_its_time_limit_is_a_stage_timeout():
    dense = pdf([[" ".join(["characters"] * 9) for _ in range(50)]])
    with pytest.raises(StageError) as error:
        run(dense, mode="ocr", dpi=600, page_timeout_seconds=1)
    assert error.value.code == "stage_timeout"


FRENCH = [["Le comité a été prévenu à côté de la forêt", "où les élèves étudièrent le français."]]


def test_the_language_decides_the_letters():
    data = image(FRENCH[0])
    in_french = run(data, languages=["fra"])["ocr"]["text"]
    in_english = run(data, languages=["eng"], second_pass=False)["ocr"]["text"]
    assert similarity(in_french, FRENCH) > similarity(in_english, FRENCH) and "é" in in_french


def test_a_page_in_another_installed_language_is_read_again_in_it(settings):
    assert settings.OCR_LANGUAGES == ["eng"]
    page = run(image(FRENCH[0]))["ocr"]["pages"][0]
    assert page["languages"] == ["fra", "eng"] and "é" in page["text"]
    assert similarity(page["text"], FRENCH) >= 0.9
    english = run(image(["The committee was warned beside the forest", "where the pupils studied English."]))
    assert english["ocr"]["pages"][0]["languages"] == ["eng"]  # read once


def test_a_language_without_its_data_is_a_clear_error():
    with pytest.raises(StageError) as error:
        run(image(["Hello"]), languages=["tlh"])
    assert error.value.code == "ocr_language_unavailable" and "OCR_LANGUAGES" in error.value.message


def test_too_many_pages_to_read():
    with pytest.raises(StageError) as error:
        run(scanned_pdf(pdf(REPORT)), max_pages=1)
    assert error.value.code == "too_many_pages"


def test_a_poster_sized_page_is_rendered_within_the_pixel_cap(monkeypatch):
    import pypdfium2

    monkeypatch.setattr(ocr, "MAX_RENDER_PIXELS", 2_000_000)
    document = pypdfium2.PdfDocument(pdf(REPORT))
    try:
        picture = ocr.render(document[0], 300)  # 612 x 792 pt at 300 DPI: 8.4 M pixels
    finally:
        document.close()
    assert picture.width * picture.height <= 2_000_000 * 1.01 and picture.width > 1000  # sides rounded up
