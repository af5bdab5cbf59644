"""Memory of one long-lived worker of our class over many jobs.

One ``manage.py rqworker default --worker-class jobs.worker.Worker`` (not burst) processes
BENCH_JOBS (2000) small text jobs through the default pipeline (a few hundred characters of
prose each, all distinct: the content-hash cache never answers), created in process in batches
of BENCH_BATCH (100), each batch once the previous one is done. After each batch the worker's
resident memory (VmRSS, /proc/<pid>/status) is read, and its parser child's while it runs (a
thread samples it every 50 ms: the child is replaced every WORKER_CHILD_MAX_TASKS documents,
so each child's last reading is its size after its last document; its private memory, the pages
it no longer shares with the worker, is printed too). Target: the worker's growth
from after the first batch (100 jobs) to after the last (2000 jobs) < 20 MiB.

    make bench-worker-memory    # BENCH_JOBS=2000 BENCH_BATCH=100
"""

import os
import shutil
import signal
import subprocess
import sys
import threading
import time

from common import (
    OUR_WORKER,
    bench_api_key,
    child_pids,
    prose,
    rss_mib,
    setup_django,
    start_worker,
    temporary_media,
    verdict,
)

TOTAL = int(os.environ.get("BENCH_JOBS", "2000"))
BATCH = int(os.environ.get("BENCH_BATCH", "100"))
TARGET_MIB = 20


class ChildSampler(threading.Thread):
    """Samples the RSS of the worker's parser children: the last reading and the peak of each."""

    def __init__(self, worker_pid: int):
        super().__init__(daemon=True)
        self.worker_pid, self.stopping = worker_pid, threading.Event()
        self.children: dict[int, dict] = {}  # pid -> {"first", "last", "peak", "jobs_before"}
        self.jobs_done = 0  # set by the main thread, to tell which jobs each child ran

    def run(self) -> None:
        while not self.stopping.wait(0.05):
            for pid in child_pids(self.worker_pid):
                rss = rss_mib(pid)
                if not rss:
                    continue
                seen = self.children.setdefault(pid, {"first": rss, "peak": 0.0, "jobs_before": self.jobs_done})
                seen["last"], seen["peak"], seen["private"] = rss, max(seen["peak"], rss), private_mib(pid)


def private_mib(pid: int) -> float:
    """Memory only ``pid`` maps (Private_Clean + Private_Dirty, /proc/<pid>/smaps_rollup), in MiB:
    what the child holds of its own, the pages it still shares with the worker left out."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            fields = dict(line.split(":", 1) for line in rollup if ":" in line)
    except OSError:
        return 0.0
    return sum(int(fields.get(name, "0 kB").split()[0]) for name in ("Private_Clean", "Private_Dirty")) / 1024


def wait_until_done(ids: list[str], timeout: float = 600) -> None:
    from jobs.models import Job, JobStatus

    deadline = time.monotonic() + timeout
    while True:
        done = Job.objects.filter(id__in=ids, status__in=[JobStatus.COMPLETED, JobStatus.FAILED]).count()
        if done == len(ids):
            failed = Job.objects.filter(id__in=ids, status=JobStatus.FAILED).count()
            if failed:
                raise RuntimeError(f"{failed} jobs failed")
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {done} of {len(ids)} jobs done after {timeout} s")
        time.sleep(0.1)


def main() -> int:
    media = temporary_media()
    setup_django()
    from django.db import transaction

    from accounts.principal import Principal
    from accounts.roles import ROLE_PERMISSIONS
    from jobs.services import job_create
    from pipeline_project.lib.redis import get_redis

    _, user, organization = bench_api_key()
    principal = Principal(user=user, organization=organization, role="admin", permissions=ROLE_PERMISSIONS["admin"])
    worker = start_worker(["default"], OUR_WORKER, burst=False)
    sampler = ChildSampler(worker.pid)
    samples = []  # (jobs done, worker RSS, child pid or None, child RSS)
    try:
        deadline = time.monotonic() + 60
        while not child_pids(worker.pid):  # warmed and forked its parser child: ready
            if worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the worker did not start")
            time.sleep(0.1)
        time.sleep(0.5)
        print(f"worker {worker.pid} started: {rss_mib(worker.pid):.1f} MiB", flush=True)
        sampler.start()
        done = 0
        while done < TOTAL:
            count = min(BATCH, TOTAL - done)
            with transaction.atomic():  # enqueued on commit
                ids = [str(job_create(principal=principal, source_type="text", text=prose(index)[1], priority=2)[0].id)
                       for index in range(done, done + count)]  # fmt: skip
            wait_until_done(ids)
            done += count
            sampler.jobs_done = done
            time.sleep(0.2)  # the worker back to waiting on Redis
            children = child_pids(worker.pid)
            child = children[0] if children else None
            samples.append((done, rss_mib(worker.pid), child, rss_mib(child) if child else 0.0))
            print(f"after {done:>5} jobs: worker {samples[-1][1]:7.1f} MiB; parser child "
                  + (f"{child} {samples[-1][3]:.1f} MiB" if child else "none (replaced, starts with the next job)"),
                  flush=True)  # fmt: skip
    finally:
        sampler.stopping.set()
        worker.send_signal(signal.SIGTERM)  # warm shutdown
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        worker.log.close()
        get_redis().flushdb()
        shutil.rmtree(media, ignore_errors=True)

    print("\nParser children (replaced every WORKER_CHILD_MAX_TASKS documents), RSS in MiB:")
    print(f"{'pid':>8}{'seen from job':>15}{'first':>8}{'last':>8}{'peak':>8}{'private at last':>17}")
    for pid, seen in sampler.children.items():
        print(f"{pid:>8}{seen['jobs_before'] + 1:>15}{seen['first']:>8.1f}{seen['last']:>8.1f}{seen['peak']:>8.1f}"
              f"{seen['private']:>17.1f}")  # fmt: skip
    first, last = samples[0], samples[-1]
    growth = last[1] - first[1]
    print(f"\nworker RSS after {first[0]} jobs: {first[1]:.1f} MiB; after {last[0]} jobs: {last[1]:.1f} MiB; "
          f"growth {growth:+.1f} MiB")  # fmt: skip
    met = verdict("worker RSS growth (MiB)", growth, TARGET_MIB, below=True)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
