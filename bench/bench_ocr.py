"""OCR through our jobs: fidelity, and speed next to the Tesseract CLI on the same images.

What a user runs: scanned PDFs (pages of real text-layer PDFs rendered to images at 300 DPI and
rebuilt as PDFs with no text layer) uploaded as jobs, the default pipeline in ``standard`` mode,
2 workers of our class (their parser processes run Tesseract through tesserocr, the engine loaded
once per process). Printed:

- fidelity: per document, the word-multiset similarity of the job's text to the original text
  layer (target >= 0.97 at 300 DPI);
- speed: pages/s through our jobs / pages/s of the ``tesseract`` CLI run directly on the same
  page images (PNG, 300 DPI) in 2 processes, interleaved over rounds (target >= 0.9);
- the binding: pages/s of tesserocr (engine kept loaded) and pytesseract (a CLI run per page) in
  one process on the same images: why the stage uses tesserocr.

Tesseract runs one thread per process everywhere (OMP_THREAD_LIMIT=1): 2 processes on 2 cores.

    make bench-ocr        # BENCH_DOCUMENTS=6 BENCH_PAGES=3 BENCH_ROUNDS=2
"""

import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import (
    OUR_WORKER,
    PROSE,
    bench_api_key,
    check_completed,
    drain,
    rq_window,
    setup_django,
    temporary_media,
    verdict,
)

N_DOCUMENTS = int(os.environ.get("BENCH_DOCUMENTS", "6"))
PAGES = int(os.environ.get("BENCH_PAGES", "3"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
DPI = 300
FIDELITY_TARGET, SPEED_TARGET = 0.97, 0.9
os.environ["OMP_THREAD_LIMIT"] = "1"


def text_pdf(rng: random.Random, tag: str) -> tuple[bytes, list[list[str]]]:
    """A text-layer PDF of English prose (``PAGES`` pages of 40 lines) and its lines."""
    from tests.pipelines.documents import pdf

    pages = []
    for page in range(PAGES):
        text = f"{tag}, page {page + 1}. " + " ".join(rng.choices(PROSE["en"], k=40))
        pages.append(textwrap.wrap(text, 90)[:40])
    return pdf(pages), pages


def similarity(text: str, pages: list[list[str]]) -> float:
    read, truth = Counter(text.split()), Counter(" ".join(" ".join(lines) for lines in pages).split())
    return sum((read & truth).values()) / max(sum(read.values()), sum(truth.values()))


def cli_round(images: list[Path]) -> float:
    """Seconds for the ``tesseract`` CLI to read ``images`` in 2 processes (a queue of pages)."""

    def read(path: Path) -> None:
        subprocess.run(["tesseract", str(path), "stdout"], check=True, capture_output=True)

    started = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:  # 2 tesseract processes at a time
        list(pool.map(read, images))
    return time.perf_counter() - started


def bindings(images: list[Path]) -> dict[str, float]:
    """Pages/s of each Python binding in this process, on the same images."""
    import pytesseract
    from PIL import Image

    from pipelines import ocr

    pictures = [Image.open(path).convert("L") for path in images]
    rates = {}
    started = time.perf_counter()
    for picture in pictures:
        ocr.recognize(picture, ["eng"], timeout_seconds=600)
    rates["tesserocr (engine kept loaded)"] = len(pictures) / (time.perf_counter() - started)
    started = time.perf_counter()
    for picture in pictures:
        pytesseract.image_to_string(picture, lang="eng")
    rates["pytesseract (a CLI run per page)"] = len(pictures) / (time.perf_counter() - started)
    return rates


def main() -> int:
    media = temporary_media()
    setup_django()
    try:
        return run()
    finally:
        from pipeline_project.lib.redis import get_redis

        get_redis().flushdb()
        shutil.rmtree(media, ignore_errors=True)


def run() -> int:
    from django.core.files.uploadedfile import SimpleUploadedFile

    from accounts.principal import Principal
    from accounts.roles import ROLE_PERMISSIONS
    from jobs.models import JobResult
    from jobs.services import jobs_from_uploads
    from tests.pipelines.documents import page_images, scanned_pdf

    _, user, organization = bench_api_key("bench-ocr")
    principal = Principal(user=user, organization=organization, role="admin", permissions=ROLE_PERMISSIONS["admin"])
    directory = Path(tempfile.mkdtemp(prefix="bench-ocr-"))
    print(f"== OCR: {N_DOCUMENTS} scanned PDFs of {PAGES} pages a round at {DPI} DPI, 2 workers, "
          f"{ROUNDS} rounds ==", flush=True)  # fmt: skip
    fidelity, ours, cli = [], [], []
    for round_ in range(ROUNDS):
        scans, truths, images = [], [], []
        for index in range(N_DOCUMENTS):
            data, pages = text_pdf(random.Random(f"{round_}-{index}"), f"Report {round_}-{index}")
            scans.append(SimpleUploadedFile(f"scan-{round_}-{index}.pdf", scanned_pdf(data, DPI)))
            truths.append(pages)
            for number, picture in enumerate(page_images(data, DPI)):
                path = directory / f"{round_}-{index}-{number}.png"
                picture.save(path, dpi=(DPI, DPI))
                images.append(path)
        jobs = jobs_from_uploads(principal=principal, files=scans, priority=2)
        ids = [str(job.id) for job in jobs]
        drain(["default"], OUR_WORKER)
        check_completed(ids)
        ours.append(len(images) / rq_window(ids))
        cli.append(len(images) / cli_round(images))
        texts = dict(JobResult.objects.filter(job_id__in=ids).values_list("job_id", "extracted_text"))
        fidelity += [similarity(texts[job.id], pages) for job, pages in zip(jobs, truths, strict=True)]
        print(f"round {round_ + 1}: our jobs {ours[-1]:.2f} pages/s, tesseract CLI in 2 processes "
              f"{cli[-1]:.2f} pages/s; fidelity min {min(fidelity):.4f}", flush=True)  # fmt: skip
    rates = bindings(images[:4])
    print("\nBindings, one process, same pages:")
    for name, rate in rates.items():
        print(f"  {name}: {rate:.2f} pages/s")
    print(f"\nFidelity (word multiset vs the text layer), {len(fidelity)} documents: min {min(fidelity):.4f}, "
          f"median {statistics.median(fidelity):.4f}")  # fmt: skip
    print(f"Speed: our jobs {statistics.median(ours):.2f} pages/s, CLI {statistics.median(cli):.2f} pages/s")
    ok = verdict("OCR fidelity (min)", min(fidelity), FIDELITY_TARGET)
    ok &= verdict("OCR pages/s, our jobs / tesseract CLI", statistics.median(ours) / statistics.median(cli),
                  SPEED_TARGET)  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
