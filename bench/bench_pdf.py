"""PDF extraction: our extract_text stage against pypdfium2 called directly.

Builds a corpus of PDFs (text on every page, a few hundred pages each), extracts every page
both ways, interleaved, and prints pages/s and the ratio (target >= 0.9). Then runs the stage
on a 1000-page PDF in a fresh process and prints its peak RSS.

    make bench-pdf
"""

import io
import resource
import statistics
import subprocess
import sys
import time

from common import ROOT, setup_django

TARGET = 0.9
LINE = "Quarterly results, revenue by region and the outlook for the next year: {n}. "


def corpus() -> list[bytes]:
    sys.path.insert(0, str(ROOT))
    from tests.pipelines.documents import pdf

    return [pdf([LINE.format(n=n) * 3 for n in range(size)]) for size in (50, 120, 200, 300, 400)] * 2


def direct(document: bytes) -> int:
    import pypdfium2

    pdf = pypdfium2.PdfDocument(document)
    pages = []
    for index in range(len(pdf)):
        page = pdf[index]
        text_page = page.get_textpage()
        pages.append(text_page.get_text_range())
        text_page.close()
        page.close()
    pdf.close()
    return len(pages)


def through_stage(document: bytes) -> int:
    from pipelines.stages import REGISTRY, StageContext

    stage = REGISTRY["extract_text"]
    context = StageContext("doc.pdf", len(document), lambda: io.BytesIO(document),
                           outputs={"detect": {"mime_type": "application/pdf"}})  # fmt: skip
    return stage.run(context, stage.defaults())["page_count"]


def rate(extract, documents) -> float:
    started = time.perf_counter()
    pages = sum(extract(document) for document in documents)
    return pages / (time.perf_counter() - started)


def peak_rss_child() -> None:
    setup_django()
    sys.path.insert(0, str(ROOT))
    from tests.pipelines.documents import pdf

    document = pdf([LINE.format(n=n) * 3 for n in range(1000)])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert through_stage(document) == 1000
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"1000-page PDF ({len(document) / 2**20:.1f} MiB): peak RSS {after / 1024:.0f} MiB "
          f"(+{(after - before) / 1024:.0f} MiB for the extraction)")  # fmt: skip


def main() -> int:
    if sys.argv[1:] == ["--rss"]:
        peak_rss_child()
        return 0
    setup_django()
    documents = corpus()
    pages = sum(direct(d) for d in documents)  # warm up both paths
    through_stage(documents[0])
    direct_rates, stage_rates = [], []
    for _ in range(5):
        direct_rates.append(rate(direct, documents))
        stage_rates.append(rate(through_stage, documents))
    direct_rate, stage_rate = statistics.median(direct_rates), statistics.median(stage_rates)
    ratio = stage_rate / direct_rate
    print(f"corpus: {len(documents)} PDFs, {pages} pages")
    print(f"pypdfium2 directly     {direct_rate:8.0f} pages/s")
    print(f"extract_text stage     {stage_rate:8.0f} pages/s   ratio {ratio:.2f}")
    subprocess.run([sys.executable, __file__, "--rss"], check=True)
    print(f"target: ratio >= {TARGET} -> {'MET' if ratio >= TARGET else 'NOT MET'}")
    return 0 if ratio >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
