"""Real work through the engine: our worker class on the default pipeline, against two baselines.

1. Texts over HTTP: BENCH_JOBS (300) small text jobs, each a few hundred characters of real
   prose in one of seven languages, all distinct (the content-hash cache never answers), created
   with POST /api/v1/jobs (API key) on gunicorn before any worker runs, then drained by 2 burst
   workers of our class (``jobs.worker.Worker``) through the default pipeline (detect,
   extract_text, language, quality; result, files and timeline written). Baseline, same run:
   as many bare no-op RQ jobs (``os.getpid``) drained by 2 stock forking ``rq.Worker``.
   Target: ratio >= 0.8.
2. Documents: BENCH_DOCUMENTS (200) files, a quarter each of PDF (3-10 pages of prose), DOCX
   (paragraphs and a table), HTML (a page with navigation, scripts, styles, a table) and plain
   text (UTF-8 or, for some, windows-1252), distinct bytes each, created in process as upload
   jobs (``jobs_from_uploads``) on the default pipeline and drained by 2 burst workers of our
   class. Baseline, same files: a bare loop calling ``pipelines.runner.run_document`` with the
   default stages (the same libraries: puremagic and charset-normalizer, pypdfium2,
   python-docx, lxml, py3langid, the quality computation) in 2 forked processes each taking
   half the files, every library loaded before timing. Target: ratio >= 0.8.

Worker rates are N over the drain, from the first job started to the last ended as the workers
wrote it in RQ's job hashes (start-up excluded, paid once per worker); the wall time with
start-up is printed beside it, and the CPU time per job of the processes (workers with their work
horses or parser children, start-up subtracted; the bare loop's processes). Per format, the
documents' mean time in the bare loop, in the worker's stages (as its parser child recorded
them) and the job's processing_time_ms are printed. Each part runs BENCH_ROUNDS (3) interleaved
rounds, fresh jobs (and fresh bytes) each round, and compares medians.

    make bench-engine-real    # BENCH_JOBS=300 BENCH_DOCUMENTS=200 BENCH_ROUNDS=3 BENCH_PARTS=texts,documents
"""

import collections
import json
import multiprocessing
import os
import random
import shutil
import statistics
import sys
import tempfile
import textwrap
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import (
    OUR_WORKER,
    PROSE,
    ROOT,
    STOCK_WORKER,
    bench_api_key,
    check_completed,
    drain_cpu,
    gunicorn,
    prose,
    rq_window,
    setup_django,
    temporary_media,
    verdict,
)

N_TEXTS = int(os.environ.get("BENCH_JOBS", "300"))
N_DOCUMENTS = int(os.environ.get("BENCH_DOCUMENTS", "200"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
PARTS = os.environ.get("BENCH_PARTS", "texts,documents").split(",")
TARGET = 0.8
FORMATS = ("pdf", "docx", "html", "txt")


# --- Part 1: texts over HTTP -----------------------------------------------------------------


def post_texts(base: str, key: str, first: int, count: int) -> list[tuple[str, str]]:
    """Creates ``count`` text jobs over HTTP; returns ``(job id, language)`` of each."""

    def post(index: int) -> tuple[str, str]:
        language, text = prose(index)
        request = urllib.request.Request(
            f"{base}/api/v1/jobs",
            data=json.dumps({"source_type": "text", "text": text}).encode(),
            headers={"X-API-Key": key, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            if response.status != 201:
                raise RuntimeError(f"POST /api/v1/jobs answered {response.status}")
            return json.load(response)["id"], language

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(post, range(first, first + count)))


def startup_cpu() -> dict[str, float]:
    """CPU seconds 2 burst workers of each class use to start and stop (on an empty queue):
    subtracted from the drains' CPU."""
    return {worker_class: drain_cpu(["high"], worker_class)[1] for worker_class in (STOCK_WORKER, OUR_WORKER)}


def bare_round(count: int, startup: dict) -> tuple[float, float, float]:
    """Bare no-op RQ jobs, stock workers: ``(drain seconds, wall seconds, CPU seconds)``."""
    from rq import Queue

    from pipeline_project.lib.redis import get_redis

    queue = Queue("low", connection=get_redis())
    ids = [queue.enqueue_call("os.getpid").id for _ in range(count)]
    wall, cpu = drain_cpu(["low"], STOCK_WORKER)
    assert queue.count == 0
    return rq_window(ids), wall, cpu - startup[STOCK_WORKER]


def engine_round(ids: list[str], startup: dict) -> tuple[float, float, float]:
    """The queued jobs ``ids``, our workers: ``(drain seconds, wall seconds, CPU seconds)``."""
    wall, cpu = drain_cpu(["default"], OUR_WORKER)
    check_completed(ids)
    return rq_window(ids), wall, cpu - startup[OUR_WORKER]


def texts(key: str) -> bool:
    from jobs.models import JobResult

    print(f"\n== Texts over HTTP: {N_TEXTS} jobs a round, default pipeline ==", flush=True)
    runs = collections.defaultdict(list)
    languages, startup = {}, startup_cpu()
    with gunicorn(workers=2) as base:
        for round_ in range(ROUNDS):
            runs["bare"].append(bare_round(N_TEXTS, startup))
            started = time.monotonic()
            created = post_texts(base, key, round_ * N_TEXTS, N_TEXTS)
            created_seconds = time.monotonic() - started
            languages.update(created)
            runs["engine"].append(engine_round([job_id for job_id, _ in created], startup))
            drained = ", ".join(f"{case} {N_TEXTS / runs[case][-1][0]:.1f} jobs/s" for case in runs)
            print(f"round {round_ + 1}: created over HTTP at {N_TEXTS / created_seconds:.0f} jobs/s; "
                  f"drained: {drained}", flush=True)  # fmt: skip
    results = JobResult.objects.filter(job_id__in=list(languages)).values_list("job_id", "result_metadata")
    detected = {str(job_id): metadata["files"][0]["language"]["language"] for job_id, metadata in results}
    right = sum(1 for job_id, language in languages.items() if detected.get(job_id) == language)
    print(f"language stage: {right} of {len(languages)} texts detected as the language they were written in")
    return report(runs, N_TEXTS, "bare RQ no-op, stock rq.Worker", "default pipeline texts, our Worker")


def report(runs: dict, count: int, bare_label: str, engine_label: str) -> bool:
    rate = {case: statistics.median(count / window for window, _, _ in values) for case, values in runs.items()}
    wall = {case: statistics.median(count / wall for _, wall, _ in values) for case, values in runs.items()}
    cpu = {case: statistics.median(cpu / count * 1000 for _, _, cpu in values) for case, values in runs.items()}
    print(f"\nMedians of {ROUNDS} rounds, {count} jobs each, 2 processes (CPU: theirs and their children's):")
    print(f"{'':<44}{'drain jobs/s':>13}{'ratio':>7}{'wall jobs/s':>13}{'ratio':>7}{'CPU ms/job':>12}")
    for case, label in (("bare", bare_label), ("engine", engine_label)):
        print(f"{label:<44}{rate[case]:>13.1f}{rate[case] / rate['bare']:>7.2f}"
              f"{wall[case]:>13.1f}{wall[case] / wall['bare']:>7.2f}{cpu[case]:>12.1f}")  # fmt: skip
    return verdict(f"{engine_label} / baseline (drain)", rate["engine"] / rate["bare"], TARGET)


# --- Part 2: documents -----------------------------------------------------------------------


def paragraphs(rng: random.Random, language: str, count: int) -> list[str]:
    return [" ".join(rng.choices(PROSE[language], k=rng.randint(3, 6))) for _ in range(count)]


def make_pdf(rng, language, tag) -> bytes:
    pages = []
    for page in range(rng.randint(3, 10)):
        text = f"{tag}, page {page + 1}. " + " ".join(paragraphs(rng, language, 5))
        pages.append(textwrap.wrap(text, 95)[:50])
    from tests.pipelines.documents import pdf

    return pdf(pages)


def make_docx(rng, language, tag) -> bytes:
    from tests.pipelines.documents import docx

    table = [["Region", "Orders", "Revenue", "Change"]] + [
        [f"Region {r}", str(rng.randint(10, 999)), f"{rng.randint(1000, 99999)}.00", f"{rng.uniform(-9, 9):+.1f}%"]
        for r in range(rng.randint(4, 12))
    ]
    return docx([f"{tag}."] + paragraphs(rng, language, rng.randint(15, 40)), table)


def make_html(rng, language, tag) -> bytes:
    rows = "".join(f"<tr><td>Item {r}</td><td>{rng.randint(1, 500)}</td></tr>" for r in range(rng.randint(5, 20)))
    body = "".join(f"<h2>Section {s}</h2>" + "".join(f"<p>{p}</p>" for p in paragraphs(rng, language, 4))
                   for s in range(rng.randint(3, 8)))  # fmt: skip
    page = f"""<!DOCTYPE html>
<html lang="{language}"><head><meta charset="utf-8"><title>{tag}</title>
<style>body {{ font-family: sans-serif; margin: 2em; }} nav li {{ display: inline; }} td {{ padding: 4px; }}</style>
<script>window.dataLayer = window.dataLayer || []; function track(e) {{ dataLayer.push(e); }}</script>
</head><body><nav><ul><li><a href="/">Home</a></li><li><a href="/news">News</a></li><li><a href="/about">About</a></li>
</ul></nav><main><h1>{tag}</h1>{body}<table><thead><tr><th>Item</th><th>Count</th></tr></thead>{rows}</table></main>
<footer><p>Contact: office@example.org</p></footer><script>track({{page: "{tag}"}});</script></body></html>"""
    return page.encode()


def make_txt(rng, language, tag) -> bytes:
    text = f"{tag}\n\n" + "\n\n".join(paragraphs(rng, language, rng.randint(6, 20)))
    return text.encode("cp1252" if language in ("fr", "de", "es") and rng.random() < 0.5 else "utf-8")


MAKERS = {"pdf": make_pdf, "docx": make_docx, "html": make_html, "txt": make_txt}


def make_documents(directory: Path, round_: int, count: int) -> list[tuple[Path, str]]:
    """``count`` files in ``directory``, the formats in turn, distinct bytes each: ``(path, format)``."""
    documents = []
    for index in range(count):
        kind = FORMATS[index % len(FORMATS)]
        rng = random.Random(f"{round_}-{index}")
        language = rng.choice(sorted(PROSE))
        data = MAKERS[kind](rng, language, f"Document {round_}-{index}")
        path = directory / f"doc-{round_}-{index}.{kind}"
        path.write_bytes(data)
        documents.append((path, kind))
    return documents


def _loop(documents, barrier, results) -> None:
    """A baseline process: the default stages on each document, as a bare loop."""
    from pipelines import runner
    from pipelines.validation import DEFAULT_CONFIG, normalized

    stages = [spec for spec in normalized(DEFAULT_CONFIG)["stages"] if spec["name"] != "fetch"]
    runner.warm()
    barrier.wait()
    started, cpu, times = time.perf_counter(), time.process_time(), []
    for path, kind in documents:
        began = time.perf_counter()
        runner.run_document(stages, runner.Document(path=str(path), file_name=path.name, size=path.stat().st_size))
        times.append((kind, time.perf_counter() - began))
    results.put((time.perf_counter() - started, time.process_time() - cpu, times))


def bare_loop(documents) -> tuple[float, float, dict]:
    """Seconds for 2 processes each running half of ``documents``, their CPU seconds, and the
    mean ms per document by format."""
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(2), context.Queue()
    processes = [context.Process(target=_loop, args=(documents[half::2], barrier, results)) for half in (0, 1)]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=1800) for _ in processes]
    for process in processes:
        process.join()
        if process.exitcode != 0:
            raise RuntimeError("a baseline process failed")
    per_kind = collections.defaultdict(list)
    for _, _, times in outcomes:
        for kind, seconds in times:
            per_kind[kind].append(seconds * 1000)
    seconds, cpu = max(outcome[0] for outcome in outcomes), sum(outcome[1] for outcome in outcomes)
    return seconds, cpu, {kind: statistics.mean(ms) for kind, ms in per_kind.items()}


def upload_jobs(principal, documents) -> list[str]:
    from django.core.files.uploadedfile import SimpleUploadedFile

    from jobs.services import jobs_from_uploads

    files = [SimpleUploadedFile(path.name, path.read_bytes()) for path, _ in documents]
    return [str(job.id) for job in jobs_from_uploads(principal=principal, files=files, priority=2)]


def engine_ms_by_kind(ids: list[str], documents) -> dict:
    """By format, mean ms per document in the worker: ``(stages, processing)``, the stages'
    durations as the parser child recorded them, and the job's processing_time_ms (claim to
    result: the stages plus the engine's reads, cache lookup and parser round trip)."""
    from jobs.models import JobFile

    kinds = {job_id: kind for job_id, (_, kind) in zip(ids, documents, strict=True)}
    per_kind = collections.defaultdict(list)
    files = JobFile.objects.filter(job_id__in=ids).values_list("job_id", "result", "job__result__processing_time_ms")
    for job_id, result, processing_ms in files:
        stages_ms = sum(record["duration_ms"] for record in result["stages"].values())
        per_kind[kinds[str(job_id)]].append((stages_ms, processing_ms))
    return {kind: tuple(map(statistics.mean, zip(*values, strict=True))) for kind, values in per_kind.items()}


def document_part(principal) -> bool:
    print(f"\n== Documents: {N_DOCUMENTS} files a round ({', '.join(FORMATS)}), default pipeline ==", flush=True)
    sys.path.insert(0, str(ROOT))
    directory = Path(tempfile.mkdtemp(prefix="bench-documents-"))
    runs, sizes = collections.defaultdict(list), collections.defaultdict(list)
    bare_ms, engine_ms = collections.defaultdict(list), collections.defaultdict(list)
    startup = startup_cpu()
    try:
        for round_ in range(ROUNDS):
            documents = make_documents(directory, round_, N_DOCUMENTS)
            for path, kind in documents:
                sizes[kind].append(path.stat().st_size)
            seconds, cpu, ms = bare_loop(documents)
            runs["bare"].append((seconds, seconds, cpu))
            ids = upload_jobs(principal, documents)
            runs["engine"].append(engine_round(ids, startup))
            for kind, value in ms.items():
                bare_ms[kind].append(value)
            for kind, value in engine_ms_by_kind(ids, documents).items():
                engine_ms[kind].append(value)
            print(f"round {round_ + 1}: bare loop {N_DOCUMENTS / seconds:.1f} documents/s, our Worker "
                  f"{N_DOCUMENTS / runs['engine'][-1][0]:.1f} jobs/s", flush=True)  # fmt: skip
            for path, _ in documents:
                path.unlink()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    print(f"\nMean ms per document:\n{'format':<8}{'size':>9}{'bare loop':>11}{'stages in worker':>18}"
          f"{'processing_time_ms':>20}")  # fmt: skip
    for kind in FORMATS:
        stages_ms, processing_ms = (statistics.mean(values) for values in zip(*engine_ms[kind], strict=True))
        print(f"{kind:<8}{statistics.mean(sizes[kind]) / 1024:>7.1f}KB{statistics.mean(bare_ms[kind]):>11.1f}"
              f"{stages_ms:>18.1f}{processing_ms:>20.1f}")  # fmt: skip
    return report(runs, N_DOCUMENTS, "bare loop, run_document, 2 processes", "documents, our Worker")


def main() -> int:
    media = temporary_media()
    setup_django()
    from accounts.principal import Principal
    from accounts.roles import ROLE_PERMISSIONS

    try:
        met = []
        if "texts" in PARTS:
            met.append(texts(bench_api_key("bench-texts")[0]))
        if "documents" in PARTS:  # another organization: its own default pipeline, its own cache
            _, user, organization = bench_api_key("bench-documents")
            admin = Principal(user=user, organization=organization, role="admin", permissions=ROLE_PERMISSIONS["admin"])
            met.append(document_part(admin))
        return 0 if all(met) else 1
    finally:
        from pipeline_project.lib.redis import get_redis

        get_redis().flushdb()
        shutil.rmtree(media, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
