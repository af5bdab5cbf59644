"""Engine overhead: no-op pipeline jobs through our worker vs bare no-op jobs through stock RQ.

Three cases, each N jobs drained by 2 ``manage.py rqworker --burst`` processes, same Redis,
run in turn in interleaved rounds (the medians are printed):

- bare RQ: N jobs calling ``os.getpid``, stock ``rq.Worker`` (forks a work horse per job);
- engine, our worker: N jobs whose pipeline is one stage doing nothing (``noop``), each claimed
  in PostgreSQL, its stage run in the worker's parser child, its result, files and timeline
  written; ``jobs.worker.Worker``, as deployed;
- engine, stock worker: the same jobs under ``rq.Worker`` (for information).

A case's rate is N over the drain: from the first job started to the last ended, as the workers
wrote it in RQ's job hashes (the workers' start-up left out: it is paid once per worker, not per
job). The wall time from spawning the workers to their exit is printed beside it, with its ratio,
and the CPU time per job of the workers and their children (work horses, parser children), what
2 workers use to start and stop on an empty queue subtracted.
Target: our worker's rate / bare RQ's rate >= 1.0 (stretch 1.5).

Then, in this process: SQL statements and commits per job (Django execute_wrapper counting every
statement; commits are atomic blocks' commits plus writes sent in autocommit), for the no-op
pipeline and the default pipeline on a small text, with stages in a parser child and in process;
and the SQL statements, commits and Redis round trips per job of our worker class's whole loop
(``Worker.work(burst=True)`` in this process: RQ's own bookkeeping included), with the time of
the slowest statements. After each round, the content-hash cache lookup (a miss) is timed
against the number of completed jobs on the pipeline's version.

    make bench-engine    # BENCH_JOBS=400, BENCH_ROUNDS=3; BENCH_PROFILE=1 adds a cProfile of that loop
"""

import collections
import os
import shutil
import statistics
import sys
import time
from contextlib import contextmanager

from common import (
    OUR_WORKER,
    STOCK_WORKER,
    bench_api_key,
    check_completed,
    drain_cpu,
    rq_window,
    setup_django,
    temporary_media,
    verdict,
)

N = int(os.environ.get("BENCH_JOBS", "400"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
PROFILE = os.environ.get("BENCH_PROFILE", "") not in ("", "0")
IN_PROCESS_JOBS = 50
TARGET, STRETCH = 1.0, 1.5
NOOP = {"stages": [{"name": "noop"}]}
WRITES = ("INSERT", "UPDATE", "DELETE")


class Jobs:
    """Creates distinct jobs (the content-hash cache would answer a repeated text from its result)."""

    def __init__(self, principal, pipeline_id=None):
        self.principal, self.pipeline_id, self.made = principal, pipeline_id, 0

    def create(self, count: int, text: str = "document {n}") -> list[str]:
        from django.db import transaction

        from jobs.services import job_create

        ids = []
        with transaction.atomic():  # enqueued on commit, all at once
            for _ in range(count):
                self.made += 1
                job, _ = job_create(principal=self.principal, source_type="text", text=text.format(n=self.made),
                                    priority=2, pipeline_id=self.pipeline_id)  # fmt: skip
                ids.append(str(job.id))
        return ids


def cache_lookup(pipeline_id) -> str:
    """The content-hash cache lookup (``job_cached_source``, a miss) timed now, and how many
    completed jobs of the pipeline's version it may have to look through."""
    from jobs.models import Job, JobFile, JobStatus
    from jobs.selectors import job_cached_source

    job = Job.objects.filter(pipeline_id=pipeline_id, status=JobStatus.COMPLETED).latest("created_at")
    job_file = JobFile.objects.get(job=job)
    count = Job.objects.filter(pipeline_version_id=job.pipeline_version_id, status=JobStatus.COMPLETED).count()
    times = []
    for _ in range(15):
        started = time.perf_counter()
        assert job_cached_source(job=job, job_file=job_file) is None
        times.append(time.perf_counter() - started)
    return f"cache lookup {statistics.median(times) * 1000:.2f} ms at {count} completed jobs"


def cases(noop_jobs: Jobs, startup: dict) -> dict:
    """Each case: () -> (drain seconds from RQ's timestamps, wall seconds with the workers'
    start-up, CPU seconds of the workers and their children, start-up subtracted)."""
    from rq import Queue

    from pipeline_project.lib.redis import get_redis

    def bare():
        queue = Queue("low", connection=get_redis())
        ids = [queue.enqueue_call("os.getpid").id for _ in range(N)]
        wall, cpu = drain_cpu(["low"], STOCK_WORKER)
        assert queue.count == 0
        return rq_window(ids), wall, cpu - startup[STOCK_WORKER]

    def engine(worker_class):
        def case():
            ids = noop_jobs.create(N)
            wall, cpu = drain_cpu(["default"], worker_class)
            check_completed(ids)
            return rq_window(ids), wall, cpu - startup[worker_class]

        return case

    return {
        "bare RQ no-op, stock rq.Worker": bare,
        "engine no-op pipeline, our Worker": engine(OUR_WORKER),
        "engine no-op pipeline, stock rq.Worker": engine(STOCK_WORKER),
    }


class Counter:
    """SQL statements and commits (atomic blocks plus writes in autocommit), Redis round trips."""

    def __init__(self):
        self.statements, self.commits, self.redis = 0, 0, 0
        self.seconds = collections.Counter()  # by statement (its first words)

    def __call__(self, execute, sql, params, many, context):
        from django.db import connection

        self.statements += 1
        if not connection.in_atomic_block and sql.lstrip().upper().startswith(WRITES):
            self.commits += 1
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.seconds[" ".join(sql.split())[:90]] += time.perf_counter() - started

    def slowest(self, jobs: int, count: int = 4) -> None:
        total = sum(self.seconds.values())
        print(f"  SQL time {total / jobs * 1000:.2f} ms per job; the slowest statements, ms per job:")
        for statement, seconds in self.seconds.most_common(count):
            print(f"    {seconds / jobs * 1000:6.2f}  {statement}")


@contextmanager
def counting():
    """Counts SQL statements, commits and Redis round trips (commands and pipelines) meanwhile."""
    from django.db import connection
    from redis.client import Pipeline, Redis

    counter = Counter()
    originals = connection.commit, Redis.execute_command, Pipeline.execute

    def commit():
        counter.commits += 1
        originals[0]()

    def execute_command(self, *args, **kwargs):
        if not isinstance(self, Pipeline):  # a pipeline's queued commands travel in its execute
            counter.redis += 1
        return originals[1](self, *args, **kwargs)

    def execute(self, *args, **kwargs):
        counter.redis += 1
        return originals[2](self, *args, **kwargs)

    connection.commit, Redis.execute_command, Pipeline.execute = commit, execute_command, execute
    try:
        with connection.execute_wrapper(counter):
            yield counter
    finally:
        del connection.commit  # the instance attribute: the class's method again
        Redis.execute_command, Pipeline.execute = originals[1:]


def round_trips(principal, noop_pipeline_id) -> None:
    """Statements and commits per job in this process, as the tests count them."""
    from django.db import connection

    from jobs import engine, queueing
    from pipelines.isolation import ParserPool

    print("\nPer job, in this process (jobs.engine.job_process; SQL statements / commits):")
    text = "The quick brown fox jumps over the lazy dog, report {n}. " * 4
    pool = ParserPool()
    try:
        for stages_in, parsers in (("parser child", pool), ("in process", None)):
            engine.use_parser_pool(parsers)
            for label, jobs in (("no-op pipeline", Jobs(principal, noop_pipeline_id)),
                                ("default pipeline, small text", Jobs(principal))):  # fmt: skip
                ids = jobs.create(20, f"{stages_in} {text}")
                connection.ensure_connection()
                engine.job_process(ids.pop())  # warm: prepared statements, caches
                with counting() as counter:
                    for job_id in ids:
                        assert engine.job_process(job_id) == "completed"
                print(f"  {label + ', stages ' + stages_in:<52}{counter.statements / len(ids):6.1f} statements"
                      f"{counter.commits / len(ids):6.1f} commits")  # fmt: skip
    finally:
        engine.use_parser_pool(None)
        pool.close()
        queueing.queue("default").empty()  # their RQ messages: the jobs are done already


def worker_loop(noop_jobs: Jobs) -> None:
    """Our worker class's whole loop in this process, counted (and profiled with BENCH_PROFILE)."""
    import cProfile
    import pstats

    from jobs import queueing
    from jobs.worker import Worker
    from pipeline_project.lib.redis import get_redis

    def run():
        Worker([queueing.queue("default")], connection=get_redis()).work(burst=True, logging_level="WARNING")

    run()  # nothing queued: starts and stops once (imports, warm-up)
    with counting() as idle:
        idle_wall, idle_cpu = time.perf_counter(), time.process_time()
        run()  # again: what a start and a stop cost, subtracted below
        idle_wall, idle_cpu = time.perf_counter() - idle_wall, time.process_time() - idle_cpu
    ids = noop_jobs.create(IN_PROCESS_JOBS)
    with counting() as counter:
        wall, cpu = time.perf_counter(), time.process_time()  # counting's timers included
        run()
        wall, cpu = time.perf_counter() - wall - idle_wall, time.process_time() - cpu - idle_cpu
    check_completed(ids)
    n = len(ids)
    print(f"\nOur Worker's loop in this process (burst over {n} no-op jobs, its start and stop subtracted), "
          f"per job: {(counter.statements - idle.statements) / n:.1f} SQL statements, "
          f"{(counter.commits - idle.commits) / n:.1f} commits, {(counter.redis - idle.redis) / n:.1f} Redis "
          f"round trips; {wall / n * 1000:.1f} ms, of which {cpu / n * 1000:.1f} ms CPU in this process")  # fmt: skip
    counter.slowest(n)
    if not PROFILE:
        return
    ids = noop_jobs.create(N)
    profile = cProfile.Profile()
    profile.runcall(run)
    check_completed(ids)
    print(f"\ncProfile of that loop over {N} no-op jobs (this thread only; the parser child is not profiled):")
    stats = pstats.Stats(profile, stream=sys.stdout)
    stats.sort_stats("cumulative").print_stats(35)
    stats.sort_stats("tottime").print_stats(25)


def main() -> int:
    media = temporary_media()
    setup_django()
    from accounts.principal import Principal
    from accounts.roles import ROLE_PERMISSIONS
    from pipelines.services import pipeline_create

    try:
        _, user, organization = bench_api_key()
        principal = Principal(user=user, organization=organization, role="admin", permissions=ROLE_PERMISSIONS["admin"])
        pipeline = pipeline_create(organization=organization, name="noop", config=NOOP)
        noop_jobs = Jobs(principal, pipeline.id)

        startup = {worker_class: drain_cpu(["high"], worker_class)[1] for worker_class in (STOCK_WORKER, OUR_WORKER)}
        runs = {name: [] for name in cases(noop_jobs, startup)}
        for round_ in range(ROUNDS):
            for name, case in cases(noop_jobs, startup).items():
                runs[name].append(case())
                window, wall, _ = runs[name][-1]
                print(f"round {round_ + 1}: {name:<42}{N / window:8.1f} jobs/s (drain), {N / wall:8.1f} (wall)",
                      flush=True)  # fmt: skip
            print(f"  after round {round_ + 1}: {cache_lookup(pipeline.id)}", flush=True)
        rate = {name: statistics.median(N / window for window, _, _ in values) for name, values in runs.items()}
        wall = {name: statistics.median(N / wall for _, wall, _ in values) for name, values in runs.items()}
        cpu = {name: statistics.median(cpu / N * 1000 for _, _, cpu in values) for name, values in runs.items()}
        bare = "bare RQ no-op, stock rq.Worker"

        print(f"\nMedians of {ROUNDS} rounds, {N} jobs each, 2 burst workers (CPU: theirs and their children's, "
              "start-up subtracted):")  # fmt: skip
        print(f"{'':<42}{'drain jobs/s':>13}{'ratio':>7}{'wall jobs/s':>13}{'ratio':>7}{'CPU ms/job':>12}")
        for name in runs:
            print(f"{name:<42}{rate[name]:>13.1f}{rate[name] / rate[bare]:>7.2f}"
                  f"{wall[name]:>13.1f}{wall[name] / wall[bare]:>7.2f}{cpu[name]:>12.1f}")  # fmt: skip
        ours = rate["engine no-op pipeline, our Worker"] / rate[bare]
        met = verdict("our Worker / bare RQ (drain)", ours, TARGET, stretch=STRETCH)

        round_trips(principal, pipeline.id)
        worker_loop(noop_jobs)
        return 0 if met else 1
    finally:
        from pipeline_project.lib.redis import get_redis

        get_redis().flushdb()
        shutil.rmtree(media, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
