"""Job creation throughput against a minimal reference, on gunicorn (2 sync workers, PostgreSQL, Redis/RQ).

Requests/s of POST /api/v1/jobs (a url job with an API key: authenticated, rate-limited,
validated, inserted with its timeline event, enqueued on RQ after commit, answered with the
job) divided by requests/s of ``ref_jobs_create.py``, a plain WSGI callable doing the same
durable work (one psycopg transaction inserting the job and its event, the same RQ enqueue),
both under the same gunicorn settings, measured in interleaved rounds. Target: ratio >= 0.5.
A text job (which also stores its text as a file with a ``job_files`` row) is measured beside
them for information.

Then where the rest goes: N requests of each kind run in this process through Django's WSGI
handler (no HTTP), timed per part, each part's own time (nested parts subtracted): auth,
throttle, validation, SQL (round trips and psycopg), ORM and service code, file storage, RQ
job building, Redis round trips, serializing and rendering the answer, and the rest of Django
and DRF (middleware, routing, request parsing, dispatch). The reference runs in process too.

    make bench-jobs-create      # BENCH_PROFILE_REQUESTS=2000 (in-process breakdown), BENCH_ROUNDS=5
"""

import io
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import common
import psycopg
from common import bench_api_key, gunicorn, interleaved, setup_django, wrk_rps

TARGET = 0.5
PROFILE_REQUESTS = int(os.environ.get("BENCH_PROFILE_REQUESTS", "2000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
BODIES = {
    "url": {"source_type": "url", "source_uri": "https://93.184.216.34/report.pdf", "metadata": {"batch": 1}},
    "text": {"source_type": "text", "text": "Hello, world. " * 20, "metadata": {"batch": 1}},
}


def lua(directory: Path, kind: str) -> Path:
    script = directory / f"post-{kind}.lua"
    script.write_text(f"wrk.method = 'POST'\nwrk.body = '{json.dumps(BODIES[kind])}'\n")
    return script


class Breakdown:
    """Wall time per part, each part's own (the time of parts nested in it subtracted), and calls."""

    def __init__(self):
        self.own = defaultdict(float)
        self.calls = defaultdict(int)
        self._stack: list[float] = []
        self._undo = []

    def wrap(self, owner, name: str, part: str) -> None:
        original = owner.__dict__[name]
        stack, own, calls = self._stack, self.own, self.calls

        def timed(*args, **kwargs):
            stack.append(0.0)
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                own[part] += elapsed - stack.pop()
                calls[part] += 1
                if stack:
                    stack[-1] += elapsed

        setattr(owner, name, timed)
        self._undo.append((owner, name, original))

    def reset(self) -> None:
        self.own.clear()
        self.calls.clear()

    def undo(self) -> None:
        for owner, name, original in reversed(self._undo):
            setattr(owner, name, original)


def instrument() -> Breakdown:
    from django.core.files.storage import FileSystemStorage
    from django.core.handlers.wsgi import WSGIHandler
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.backends.utils import CursorWrapper
    from redis.client import Pipeline, Redis
    from rest_framework.renderers import JSONRenderer
    from rest_framework.serializers import BaseSerializer
    from rest_framework.views import APIView

    from jobs import queueing, services
    from jobs.api.serializers import JobSerializer

    breakdown = Breakdown()
    for owner, name, part in (
        (WSGIHandler, "__call__", "Django + DRF (middleware, routing, parsing, dispatch, view)"),
        (APIView, "perform_authentication", "authentication (API key, cached)"),
        (APIView, "check_throttles", "rate limit"),
        (APIView, "check_permissions", "permission check"),
        (BaseSerializer, "is_valid", "input validation (serializers)"),
        (services, "job_create", "service: rows built (models, SQL text, parameters)"),
        (CursorWrapper, "_execute", "SQL statements (round trips + psycopg)"),
        (BaseDatabaseWrapper, "_commit", "SQL statements (round trips + psycopg)"),
        (FileSystemStorage, "_save", "file storage (text job's input.txt)"),
        (queueing, "enqueue", "RQ job building (Python)"),
        (queueing, "enqueue_many", "RQ job building (Python)"),
        (Redis, "execute_command", "Redis round trips"),
        (Pipeline, "execute", "Redis round trips"),
        (JobSerializer, "to_representation", "answer: job to dict"),
        (JSONRenderer, "render", "answer: JSON rendering"),
    ):
        if name in getattr(owner, "__dict__", {}):
            breakdown.wrap(owner, name, part)
    return breakdown


def environ(body: bytes, key: str) -> dict:
    return {
        "REQUEST_METHOD": "POST", "PATH_INFO": "/api/v1/jobs", "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000", "HTTP_HOST": "127.0.0.1:8000", "REMOTE_ADDR": "127.0.0.1",
        "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr, "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)),
        "HTTP_X_API_KEY": key,
    }  # fmt: skip


def call(app, body: bytes, key: str) -> None:
    status = []
    response = app(environ(body, key), lambda line, headers, exc_info=None: status.append(line))
    b"".join(response)
    getattr(response, "close", lambda: None)()
    if not status[0].startswith("201"):
        raise RuntimeError(f"POST /api/v1/jobs answered {status[0]}")


def per_request_ms(app, body: bytes, key: str, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        call(app, body, key)
    return (time.perf_counter() - started) / count * 1000


def in_process(key: str) -> None:
    """The breakdown: this process, no HTTP server, no concurrency; the cases interleaved in
    ``ROUNDS`` rounds (this machine is shared and noisy), medians of the rounds."""
    import ref_jobs_create
    from django.core.handlers.wsgi import WSGIHandler

    django_app, per_round = WSGIHandler(), max(1, PROFILE_REQUESTS // ROUNDS)
    bodies = {kind: json.dumps(body).encode() for kind, body in BODIES.items()}
    apps = {"url": django_app, "text": django_app, "reference": lambda *args: ref_jobs_create.application(*args)}
    cases = {case: bodies["url" if case == "reference" else case] for case in apps}
    for case in cases:  # warm: connections, prepared statements, caches
        per_request_ms(apps[case], cases[case], key, 100)
    plain = {case: [] for case in cases}
    for _ in range(ROUNDS):
        for case in cases:
            plain[case].append(per_request_ms(apps[case], cases[case], key, per_round))
    plain = {case: statistics.median(values) for case, values in plain.items()}

    breakdown = instrument()
    breakdown.wrap(ref_jobs_create, "application", "reference: WSGI, JSON, RQ job building")
    for owner, name in ((psycopg.Connection, "execute"), (psycopg.Transaction, "__enter__"),
                        (psycopg.Transaction, "__exit__")):  # fmt: skip
        breakdown.wrap(owner, name, "SQL statements (round trips + psycopg)")
    own = {case: defaultdict(float) for case in cases}
    calls = {case: defaultdict(int) for case in cases}
    try:
        for _ in range(ROUNDS):
            for case in cases:
                breakdown.reset()
                per_request_ms(apps[case], cases[case], key, per_round)
                for part, seconds in breakdown.own.items():
                    own[case][part] += seconds
                    calls[case][part] += breakdown.calls[part]
    finally:
        breakdown.undo()
    count = per_round * ROUNDS
    ms = {case: {part: seconds / count * 1000 for part, seconds in parts.items()} for case, parts in own.items()}

    print(f"\nIn process (no HTTP server; {count} requests of each, interleaved), ms per request (median of rounds):")
    print(f"  {'reference (ref_jobs_create.application, url body)':<56}{plain['reference']:7.3f}")
    for kind in bodies:
        print(f"  {f'POST /jobs, {kind} job':<56}{plain[kind]:7.3f}   reference / this = "
              f"{plain['reference'] / plain[kind]:.2f}")  # fmt: skip
    print("\nWhere a request's time goes: each part's own time (parts nested in it subtracted), ms per request")
    print("(timers add a little; statements and round trips per request in brackets):")
    print(f"  {'part':<62}{'url':>12}{'text':>12}{'reference':>12}")
    names = sorted({part for parts in ms.values() for part in parts}, key=lambda part: -ms["url"].get(part, 0))
    for part in names:
        cells = ""
        for case in cases:
            cell = f"{ms[case].get(part, 0):.3f}"
            if part.startswith(("SQL", "Redis")):
                cell += f" [{calls[case][part] / count:.0f}]"
            cells += f"{cell:>12}"
        print(f"  {part:<62}{cells}")
    print(f"  {'total':<62}" + "".join(f"{sum(ms[case].values()):>12.3f}" for case in cases))
    print(
        "  [n]: per request, SQL statements (COMMITs included; Django's BEGIN, sent ahead of its first statement,"
        " is not counted, the reference's is) and Redis round trips"
    )


def same_rq_format(redis, app_id: str, ref_id: str) -> bool:
    """The reference and the application put the same RQ job on the queue (same hash fields, function,
    callback), so that the comparison is of the same enqueue."""
    from rq.job import Job

    fields = [set(redis.hkeys(f"rq:job:{job_id}")) for job_id in (app_id, ref_id)]
    jobs = [Job.fetch(job_id, connection=redis) for job_id in (app_id, ref_id)]
    described = [(job.func_name, job._stopped_callback_name, job.origin, job.timeout) for job in jobs]
    return fields[0] == fields[1] and described[0] == described[1]


def over_http(key: str, organization_id: str) -> tuple[dict[str, float], bool]:
    """Requests/s of each case under gunicorn (medians of interleaved rounds), and whether the
    reference and the application put alike RQ jobs on the queue."""
    common.ENV["REF_ORGANIZATION_ID"] = os.environ["REF_ORGANIZATION_ID"] = organization_id
    scripts = Path(tempfile.mkdtemp())
    post = {kind: lua(scripts, kind) for kind in BODIES}
    headers = {"X-API-Key": key, "Content-Type": "application/json"}
    reference_app = "ref_jobs_create:application"
    with gunicorn(workers=2) as base, gunicorn(workers=2, extra=("--pythonpath", "bench"), app=reference_app) as ref:
        targets = {"reference": (ref, "url"), "url": (base, "url"), "text": (base, "text")}

        def run(case: str, seconds: int = 5) -> float:
            server, kind = targets[case]
            return wrk_rps(f"{server}/api/v1/jobs", headers, seconds=seconds, script=post[kind])

        for case in targets:  # warm up every worker, connection and cache
            run(case, seconds=2)
        rps = interleaved({case: lambda case=case: run(case) for case in targets}, rounds=ROUNDS)
    shutil.rmtree(scripts, ignore_errors=True)

    from jobs.models import JobEvent
    from pipeline_project.lib.redis import get_redis

    latest = JobEvent.objects.filter(job__source_type="url").order_by("-id").values_list("job_id", flat=True)
    ref_job, app_job = latest.filter(actor="reference").first(), latest.exclude(actor="reference").first()
    return rps, same_rq_format(get_redis(), str(app_job), str(ref_job))


def main() -> int:
    media = tempfile.mkdtemp(prefix="bench-media-")
    common.ENV["MEDIA_ROOT"] = media  # text jobs store a file each: keep them out of var/
    setup_django()
    from jobs.models import Job
    from pipeline_project.lib.redis import get_redis

    try:
        key, _, organization = bench_api_key()
        rps, same = over_http(key, str(organization.id))
        ratio = rps["url"] / rps["reference"]
        print(f"\n{'endpoint (gunicorn, 2 sync workers)':<44}{'req/s':>10}{'ratio':>9}")
        print(f"{'reference (bench/ref_jobs_create.py)':<44}{rps['reference']:>10.0f}{1:>9.2f}")
        print(f"{'POST /jobs, url job (API key)':<44}{rps['url']:>10.0f}{ratio:>9.2f}")
        print(f"{'POST /jobs, text job (+ file, job_files row)':<44}{rps['text']:>10.0f}"
              f"{rps['text'] / rps['reference']:>9.2f}")  # fmt: skip
        print(f"jobs created: {Job.objects.count()}; reference and application RQ jobs alike: {same}")
        print(f"target: url ratio >= {TARGET} -> {'MET' if ratio >= TARGET else 'NOT MET'}", flush=True)

        sys.path.insert(0, str(common.ROOT / "bench"))
        in_process(key)
    finally:
        get_redis().flushdb()  # the bench's own database (14): tens of thousands of RQ jobs nobody runs
        shutil.rmtree(media, ignore_errors=True)
    return 0 if ratio >= TARGET and same else 1


if __name__ == "__main__":
    sys.exit(main())
