"""The Markdown rendering: headings, nested lists and tables of DOCX and HTML, tables that parse
back (markdown-it-py) to the same cells, page markers of PDFs, CSV as a table."""

import io

import pytest
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from markdown_it import MarkdownIt

from pipelines.stages import REGISTRY, StageContext
from tests.pipelines.documents import pdf

TABLE = [["Region", "Orders", "Revenue"], ["North | East", "12", "1,200.00"], ["South *best*", "7", "700.00"]]


def render(data: bytes, name: str = "doc") -> str:
    ctx = StageContext(file_name=name, size=len(data), open=lambda: io.BytesIO(data))
    for stage in ("detect", "extract_text"):
        ctx.outputs[stage] = REGISTRY[stage].run(ctx, REGISTRY[stage].defaults())
    return ctx.outputs["extract_text"]["markdown"]


def parsed(markdown: str) -> dict:
    """What a Markdown reader sees: headings (level, text), list items (depth, text), table rows."""
    tokens = MarkdownIt("commonmark").enable("table").parse(markdown)
    found, depth, row = {"headings": [], "items": [], "rows": []}, 0, None
    for index, token in enumerate(tokens):
        if token.type in ("bullet_list_open", "ordered_list_open"):
            depth += 1
        elif token.type in ("bullet_list_close", "ordered_list_close"):
            depth -= 1
        elif token.type == "heading_open":
            found["headings"].append((int(token.tag[1]), tokens[index + 1].content))
        elif token.type == "list_item_open":
            found["items"].append((depth, tokens[index + 2].content))
        elif token.type == "tr_open":
            row = []
        elif token.type in ("th_open", "td_open"):
            row.append(tokens[index + 1].children and "".join(child.content for child in tokens[index + 1].children))
        elif token.type == "tr_close":
            found["rows"].append(row)
    return found


def docx_document() -> bytes:
    import docx

    document = docx.Document()
    document.add_heading("Quarterly report", 1)
    document.add_paragraph("Sales grew in every region.")
    document.add_heading("Regions", 2)
    for text, level in (("North", 0), ("Oslo", 1), ("Bergen", 1), ("South", 0)):
        paragraph = document.add_paragraph(text, style="List Bullet")
        numbering = OxmlElement("w:numPr")  # as Word writes a list item: its level and its list
        for tag, value in (("w:ilvl", level), ("w:numId", 1)):
            element = OxmlElement(tag)
            element.set(qn("w:val"), str(value))
            numbering.append(element)
        paragraph._p.get_or_add_pPr().append(numbering)
    grid = document.add_table(rows=len(TABLE), cols=3)
    for r, row in enumerate(TABLE):
        for c, value in enumerate(row):
            grid.cell(r, c).text = value
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


HTML = b"""<!DOCTYPE html><html><head><title>Report</title><script>track()</script></head><body>
<h1>Quarterly report</h1><p>Sales grew in every region.</p><h2>Regions</h2>
<ul><li>North<ul><li>Oslo</li><li>Bergen</li></ul></li><li>South</li></ul>
<table><thead><tr><th>Region</th><th>Orders</th><th>Revenue</th></tr></thead><tbody>
<tr><td>North | East</td><td>12</td><td>1,200.00</td></tr><tr><td>South *best*</td><td>7</td><td>700.00</td></tr>
</tbody></table></body></html>"""


@pytest.mark.parametrize("data", [docx_document(), HTML], ids=["docx", "html"])
def test_headings_nested_lists_and_tables_survive(data):
    markdown = render(data)
    found = parsed(markdown)
    assert found["headings"] == [(1, "Quarterly report"), (2, "Regions")]
    assert found["items"] == [(1, "North"), (2, "Oslo"), (2, "Bergen"), (1, "South")]
    assert found["rows"] == TABLE, markdown
    assert "track()" not in markdown


def test_pdf_pages_are_marked_and_their_text_kept_literal():
    markdown = render(pdf(["# not a heading", "Page two * text"]))
    assert markdown.startswith("<!-- page 1 -->") and "<!-- page 2 -->" in markdown
    assert parsed(markdown)["headings"] == []


def test_csv_becomes_a_table():
    assert parsed(render(b"a,b\n1,2\n", "t.csv"))["rows"] == [["a", "b"], ["1", "2"]]
