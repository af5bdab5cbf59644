"""A Markdown rendering of a document, beside its plain text: headings, lists (nested) and tables
of DOCX and HTML kept, the page breaks of PDFs and scans marked (``<!-- page N -->``).

HTML goes through markdownify (MIT) from the tree ``extract_text`` already cleaned (no scripts or
styles); DOCX is walked here with python-docx, in body order: headings from the paragraph styles
(``Heading N``, ``Title``), list items from their numbering level (``w:ilvl``, as Word writes it)
or their style (``List Bullet 2``, ``List Number``), tables as pipe tables with the first row as
header. Table cells escape ``|`` so that a table parses back to the same cells.
"""

import re

import markdownify

_SPECIAL = re.compile(r"([\\`*_\[\]<>|])")
_LINE_START = re.compile(r"^(\s*)([#>+-]|\d+[.)])(?=\s|$)")
INDENT = "    "  # per list level: a nested item of a "- " or "1. " parent, in CommonMark


def escape(text: str) -> str:
    """``text`` as literal Markdown: inline markup characters and block markers at line starts escaped."""
    return "\n".join(_LINE_START.sub(r"\1\\\2", _SPECIAL.sub(r"\\\1", line)) for line in text.split("\n"))


def cell(text: str) -> str:
    return escape(" ".join(text.split()))


def table(rows: list[list[str]]) -> str:
    """A pipe table; the first row is the header. Rows are padded to the widest."""
    if not rows:
        return ""
    width = max(len(row) for row in rows)
    lines = ["| " + " | ".join(cell(value) for value in [*row, *[""] * (width - len(row))]) + " |" for row in rows]
    lines.insert(1, "|" + " --- |" * width)
    return "\n".join(lines)


def pages(texts: list[str]) -> str:
    """Pages of plain text (a PDF's, or OCR's), each after its ``<!-- page N -->`` marker."""
    return "\n\n".join(f"<!-- page {number} -->\n\n{escape(text)}".rstrip() for number, text in
                       enumerate(texts, start=1))  # fmt: skip


class _HtmlConverter(markdownify.MarkdownConverter):
    def convert_td(self, el, text, parent_tags):
        return super().convert_td(el, text.replace("|", "\\|"), parent_tags)

    convert_th = convert_td


def html(tree) -> str:
    """A cleaned lxml HTML tree as Markdown (its ``<body>``; the ``<title>`` is not content)."""
    import lxml.html

    body = tree.find("body")
    source = lxml.html.tostring(body if body is not None else tree, encoding="unicode")
    converter = _HtmlConverter(heading_style=markdownify.ATX, bullets="-", table_infer_header=True,
                               escape_underscores=True, escape_asterisks=True, escape_misc=False)  # fmt: skip
    return re.sub(r"\n{3,}", "\n\n", converter.convert(source)).strip()


def docx(document) -> str:
    """A python-docx ``Document`` as Markdown, in body order."""
    from docx.table import Table

    blocks: list[str] = []
    in_list = False
    for item in document.iter_inner_content():
        if isinstance(item, Table):
            blocks.append(table([[c.text for c in _unique(row.cells)] for row in item.rows]))
            in_list = False
            continue
        text = item.text.strip()
        if not text:
            in_list = False
            continue
        style = item.style.name if item.style is not None else ""
        level = _list_level(item, style)
        if level is not None:
            marker = "1." if "Number" in style else "-"
            line = f"{INDENT * level}{marker} {escape(text)}"
            if in_list:
                blocks[-1] += "\n" + line
            else:
                blocks.append(line)
            in_list = True
            continue
        in_list = False
        heading = _heading_level(style)
        blocks.append(f"{'#' * heading} {escape(text)}" if heading else escape(text))
    return "\n\n".join(blocks)


def _unique(cells) -> list:
    """A row's cells, a merged cell once (python-docx repeats it for every grid column it spans)."""
    seen, unique = set(), []
    for value in cells:
        if id(value._tc) not in seen:
            seen.add(id(value._tc))
            unique.append(value)
    return unique


def _heading_level(style: str) -> int:
    if style == "Title":
        return 1
    match = re.fullmatch(r"Heading (\d)", style)
    return min(int(match[1]), 6) if match else 0


def _list_level(paragraph, style: str) -> int | None:
    """The paragraph's list level (0 = top), or None if it is not a list item."""
    properties = paragraph._p.pPr
    numbering = properties.numPr if properties is not None else None
    if numbering is not None and numbering.numId is not None and numbering.numId.val != 0:
        return numbering.ilvl.val if numbering.ilvl is not None else 0
    match = re.fullmatch(r"List(?: Bullet| Number|)(?: (\d))?", style)
    if match:
        return int(match[1]) - 1 if match[1] else 0
    return None
