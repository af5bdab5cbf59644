"""Job listing at scale: does a page cost the same on 1M jobs as on 10k?

Seeds two organizations in one table with bulk SQL (10k and 1M jobs), then measures
p50/p95 latency of GET /api/v1/jobs for page 1, page 500 (page numbers), the cursor
equivalent of page 500, and ?status=failed, alternating between the two organizations.
Prints p95(1M) / p95(10k) per case. Target: <= 1.5 for every case.

    make bench-jobs-list          # BENCH_LARGE=1000000 by default; seeding takes a minute
"""

import os
import statistics
import sys
import time

import requests
from common import bench_api_key, gunicorn, setup_django

TARGET = 1.5
SMALL, LARGE = 10_000, int(os.environ.get("BENCH_LARGE", "1000000"))
SAMPLES = int(os.environ.get("BENCH_SAMPLES", "150"))

SEED_SQL = """
INSERT INTO jobs (id, organization_id, status, source_type, source_uri, file_name, file_size, mime_type, mode,
                  priority, config, metadata, webhook_url, progress_percent, progress_stage, stages_done,
                  stages_total, attempts, max_attempts, locked_by, request_hash, created_at, updated_at)
SELECT gen_random_uuid(), %(org)s,
       (ARRAY['queued','processing','completed','completed','completed','failed','cancelled'])[1 + n %% 7],
       'url', 'https://example.com/doc-' || n || '.pdf', 'doc-' || n || '.pdf', 1000 + n, 'application/pdf',
       'standard', 1 + n %% 3, '{}', jsonb_build_object('n', n), '', 0, '', 0, 0, 0, 3, '', '',
       now() - make_interval(secs => n), now() - make_interval(secs => n)
FROM generate_series(1, %(count)s) AS n
"""


def seed(name: str, count: int):
    from django.db import connection

    key, _, organization = bench_api_key(f"bench-{name}")
    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute(SEED_SQL, {"org": organization.id, "count": count})
    print(f"seeded {count:>9,} jobs in {time.monotonic() - started:5.1f} s", flush=True)
    return key


def cursor_at(key: str, base: str, position: int) -> str:
    """The cursor that starts the page after ``position`` rows (what 499 `next` hops would give)."""
    from django.db import connection

    from jobs.models import Job
    from pipeline_project.lib.pagination import _encode

    organization_id = requests.get(f"{base}/api/v1/auth/me", headers={"X-API-Key": key}).json()["organization"]["id"]
    row = Job.objects.filter(organization_id=organization_id).order_by("-created_at", "-id")[position - 1]
    assert connection.vendor == "postgresql"
    return _encode([row.created_at, row.id])


def measure(session, url: str, key: str) -> float:
    started = time.perf_counter()
    response = session.get(url, headers={"X-API-Key": key})
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    return elapsed * 1000


def main() -> int:
    setup_django()
    keys = {"10k": seed("small", SMALL), "1M": seed("large", LARGE)}
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE jobs")
    with gunicorn(workers=2) as base:
        cursors = {size: cursor_at(key, base, 500 * 20) for size, key in keys.items()}
        cases = {
            "page 1": lambda size: "/api/v1/jobs",
            "page 500": lambda size: "/api/v1/jobs?page=500",
            "cursor, page 500": lambda size: f"/api/v1/jobs?cursor={cursors[size]}",
            "?status=failed": lambda size: "/api/v1/jobs?status=failed",
        }
        session = requests.Session()
        timings = {(case, size): [] for case in cases for size in keys}
        for _ in range(5):  # warm up every path
            for path in cases.values():
                for size, key in keys.items():
                    measure(session, base + path(size), key)
        for _ in range(SAMPLES):
            for case, path in cases.items():
                for size, key in keys.items():
                    timings[case, size].append(measure(session, base + path(size), key))

    def pct(values, q):
        return statistics.quantiles(values, n=100)[q - 1]

    print(f"\n{'case':<20}{'p50 10k':>10}{'p95 10k':>10}{'p50 1M':>10}{'p95 1M':>10}{'p95 ratio':>11}   (ms)")
    ok = True
    for case in cases:
        small, large = timings[case, "10k"], timings[case, "1M"]
        ratio = pct(large, 95) / pct(small, 95)
        ok &= ratio <= TARGET
        print(f"{case:<20}{pct(small, 50):>10.1f}{pct(small, 95):>10.1f}{pct(large, 50):>10.1f}"
              f"{pct(large, 95):>10.1f}{ratio:>11.2f}")  # fmt: skip
    print(f"target: every p95 ratio <= {TARGET} -> {'MET' if ok else 'NOT MET'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
