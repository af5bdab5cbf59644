"""Engine overhead: no-op pipeline jobs through our engine vs bare RQ no-op jobs.

N jobs whose pipeline is one stage that does nothing (each claimed with SKIP LOCKED, run,
its result saved, its timeline written), processed by 2 `manage.py rqworker --burst`
processes (RQ's forking Worker); then N bare RQ jobs calling a no-op function, same
worker class and count, same Redis. Prints jobs/s of each and the ratio. Target >= 0.5.

    make bench-engine        # BENCH_JOBS=400 by default
"""

import os
import subprocess
import sys
import time

from common import ENV, ROOT, bench_api_key, setup_django

N = int(os.environ.get("BENCH_JOBS", "400"))
TARGET = 0.5
WORKER_CLASS = os.environ.get("BENCH_WORKER_CLASS", "rq.Worker")  # RQ's forking Worker, as deployed; both runs


def drain(queue: str, workers: int = 2) -> float:
    """Seconds for ``workers`` burst workers to empty ``queue``."""
    started = time.monotonic()
    processes = [
        subprocess.Popen(
            [sys.executable, "manage.py", "rqworker", queue, "--burst", "--worker-class", WORKER_CLASS],
            cwd=ROOT,
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for _ in range(workers)
    ]
    for process in processes:
        process.wait(timeout=1800)
    return time.monotonic() - started


def main() -> int:
    setup_django()
    from django.db import transaction
    from rq import Queue

    from accounts.models import Membership
    from accounts.principal import Principal
    from accounts.roles import ROLE_PERMISSIONS
    from jobs.models import Job, JobStatus
    from jobs.services import job_create
    from pipeline_project.lib.redis import get_redis
    from pipelines.services import pipeline_create

    _, user, organization = bench_api_key()
    principal = Principal(user=user, organization=organization, role="admin", permissions=ROLE_PERMISSIONS["admin"])
    assert Membership.objects.filter(user=user).exists()
    pipeline = pipeline_create(organization=organization, name="noop", config={"stages": [{"name": "noop"}]})
    with transaction.atomic():  # enqueued on commit, all at once
        for n in range(N):
            job_create(principal=principal, source_type="text", text=f"document {n}", priority=2,
                       pipeline_id=pipeline.id)  # fmt: skip
    engine_seconds = drain("default")
    done = Job.objects.filter(status=JobStatus.COMPLETED).count()
    assert done == N, f"only {done} of {N} engine jobs completed"

    queue = Queue("low", connection=get_redis())
    for _ in range(N):
        queue.enqueue_call("os.getpid")
    bare_seconds = drain("low")
    assert queue.count == 0

    engine_rate, bare_rate = N / engine_seconds, N / bare_seconds
    ratio = engine_rate / bare_rate
    print(f"{'':<26}{'jobs':>6}{'seconds':>9}{'jobs/s':>8}")
    print(f"{'bare RQ no-op':<26}{N:>6}{bare_seconds:>9.1f}{bare_rate:>8.1f}")
    print(f"{'engine, no-op pipeline':<26}{N:>6}{engine_seconds:>9.1f}{engine_rate:>8.1f}")
    print(f"ratio {ratio:.2f}; target >= {TARGET} -> {'MET' if ratio >= TARGET else 'NOT MET'}")
    return 0 if ratio >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
