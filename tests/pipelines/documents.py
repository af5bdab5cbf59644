"""Real documents built in the tests (no binary fixtures in the repository)."""

import io


def pdf(pages: list[str | list[str]]) -> bytes:
    """A valid PDF, one page per item: a line of text, or a list of lines (Helvetica, WinAnsi
    encoding, so accented Latin letters come out right)."""
    font = "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
    objects, kids = ["<< /Type /Catalog /Pages 2 0 R >>", None, font], []
    for page in pages:
        lines = [page] if isinstance(page, str) else page
        shown = " T* ".join(
            "(" + line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ") Tj" for line in lines
        )
        stream = f"BT /F1 11 Tf 14 TL 56 760 Td {shown} ET".encode("cp1252")
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {len(objects)} 0 R "
                       "/Resources << /Font << /F1 3 0 R >> >> >>")  # fmt: skip
        kids.append(f"{len(objects)} 0 R")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>"
    out, offsets = io.BytesIO(), []
    out.write(b"%PDF-1.4\n")
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        body = body if isinstance(body, bytes) else body.encode("latin-1")
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    out.write(f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()


def docx(paragraphs: list[str], table: list[list[str]] | None = None) -> bytes:
    import docx as python_docx

    document = python_docx.Document()
    for text in paragraphs:
        document.add_paragraph(text)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, value in enumerate(row):
                grid.cell(r, c).text = value
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def page_images(text_pdf: bytes, dpi: int = 200) -> list:
    """The pages of a PDF rendered as greyscale images (PIL), as a scanner would give them."""
    import pypdfium2

    document = pypdfium2.PdfDocument(text_pdf)
    try:
        return [document[index].render(scale=dpi / 72, grayscale=True).to_pil() for index in range(len(document))]
    finally:
        document.close()


def scanned_pdf(text_pdf: bytes, dpi: int = 200, *, keep_text: tuple[int, ...] = ()) -> bytes:
    """A PDF of page images with no text layer, made from ``text_pdf`` (rendered at ``dpi``); the
    pages numbered in ``keep_text`` (from 1) keep their text layer: a mixed document."""
    import pypdfium2

    scans = page_images(text_pdf, dpi)
    if not keep_text:
        out = io.BytesIO()
        scans[0].save(out, "PDF", save_all=True, append_images=scans[1:], resolution=dpi)
        return out.getvalue()
    original = pypdfium2.PdfDocument(text_pdf)
    mixed = pypdfium2.PdfDocument.new()
    try:
        for number, scan in enumerate(scans, start=1):
            if number in keep_text:
                mixed.import_pages(original, [number - 1])
            else:
                one = io.BytesIO()
                scan.save(one, "PDF", resolution=dpi)
                mixed.import_pages(pypdfium2.PdfDocument(one.getvalue()))
        out = io.BytesIO()
        mixed.save(out)
        return out.getvalue()
    finally:
        mixed.close()
        original.close()


def image(lines: list[str] | list[list[str]], fmt: str = "PNG", dpi: int = 200) -> bytes:
    """An image file of text (``fmt``: PNG, JPEG, TIFF, WEBP); a list of pages makes a multi-page TIFF."""
    pages = lines if lines and isinstance(lines[0], list) else [lines]
    scans = [page_images(pdf([page]), dpi)[0] for page in pages]
    out = io.BytesIO()
    options = {"save_all": True, "append_images": scans[1:]} if len(scans) > 1 else {}
    scans[0].save(out, fmt, dpi=(dpi, dpi), **({"quality": 95} if fmt in ("JPEG", "WEBP") else {}), **options)
    return out.getvalue()
