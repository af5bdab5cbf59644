"""``/metrics`` for Prometheus: django-prometheus's request and database metrics, and ours (README, "Metrics").

Ours are defined here, and counted where things happen, through the small functions below (they never
raise: a metric that cannot be written is logged, the job or delivery goes on):

- ``pipeline_jobs_created_total{priority,source_type}``: ``jobs.services`` (``job_create``,
  ``jobs_from_uploads``, ``job_retry``), once the job's transaction commits;
- ``pipeline_jobs_finished_total{status}``: ``jobs.services``, when a job reaches ``completed``,
  ``failed`` or ``cancelled`` (once per job: final statuses have no way out), once that commits;
- ``pipeline_job_duration_seconds`` and ``pipeline_stage_duration_seconds{stage}``: ``jobs.engine``;
- ``pipeline_webhook_deliveries_total{result}``: ``webhooks.delivery``, once each attempt's outcome is recorded;
- ``pipeline_queue_depth{queue}``, ``pipeline_workers``, ``pipeline_oldest_queued_seconds``: read when
  ``/metrics`` is scraped (``PipelineCollector``), by the process answering it, once per scrape.

**Multiprocess mode** (prometheus_client): every process (gunicorn workers, RQ workers, commands)
writes its counters and histograms to files of its own in ``PROMETHEUS_MULTIPROC_DIR`` (settings:
named after its host and pid), and ``/metrics`` adds up the files of every process, live or dead. So
a job finished by a worker counts in the web's answer, and counters survive a process's restart.
Web and workers must share the directory; it is emptied only while none of them runs (``make run``
does at start). A stock forking ``rq.Worker`` writes files for each job's work horse (a new pid
every job): prefer ``jobs.worker.Worker``, whose jobs run in the worker's own process.
"""

import functools
import hmac
import logging
import os
from collections.abc import Iterable

from django.conf import settings
from django.db import transaction
from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from pipeline_project.lib.errors import error_body

logger = logging.getLogger(__name__)

# Seconds. A job: from a text snippet (tens of ms) to a long PDF or a slow download (minutes).
JOB_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
STAGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

JOBS_CREATED = Counter(
    "pipeline_jobs_created", "Jobs created (API, uploads, retries), drafts included.", ["priority", "source_type"]
)
JOBS_FINISHED = Counter(
    "pipeline_jobs_finished", "Jobs that reached a final status: completed, failed or cancelled.", ["status"]
)
STAGE_DURATION = Histogram(
    "pipeline_stage_duration_seconds",
    "Time one document spent in one pipeline stage that succeeded (fetch: the download).",
    ["stage"],
    buckets=STAGE_BUCKETS,
)
WEBHOOK_DELIVERIES = Counter(
    "pipeline_webhook_deliveries",
    "Webhook delivery attempts by outcome: succeeded; retrying (failed, tried again later); failed (for good: "
    "retries spent, 410 Gone or an unsafe URL); disabled (its subscription is disabled: not sent); "
    "lost (the attempt's outcome was not recorded: its claim had run out).",
    ["result"],
)


@functools.cache
def _job_duration() -> Histogram:
    # Created on first use: a metric without labels writes its file when created, and importing
    # this module (at start-up) must write nothing (tests/conftest.py points the tests elsewhere first).
    return Histogram(
        "pipeline_job_duration_seconds",
        "Time a worker spent on a job, from its claim to its final status (completed, failed or cancelled).",
        buckets=JOB_BUCKETS,
    )


def _logged(function):
    """Metrics never break what they measure: an error (a full disk under the metrics directory) is logged."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs) -> None:
        try:
            function(*args, **kwargs)
        except Exception:
            logger.warning("metrics: %s failed", function.__name__, exc_info=True)

    return wrapper


# --- Counting ---------------------------------------------------------------------------------------


def jobs_created(jobs: Iterable) -> None:
    """Counts new jobs once the transaction inserting them commits (at once outside a transaction)."""
    counts: dict[tuple[str, str], int] = {}
    for job in jobs:
        key = (job.get_priority_display(), str(job.source_type))
        counts[key] = counts.get(key, 0) + 1
    if counts:
        transaction.on_commit(functools.partial(_count_created, counts), robust=True)


@_logged
def _count_created(counts: dict[tuple[str, str], int]) -> None:
    for (priority, source_type), count in counts.items():
        JOBS_CREATED.labels(priority, source_type).inc(count)


def job_finished(status: str) -> None:
    """Counts a job that reached final ``status``, once the transaction writing it commits."""
    transaction.on_commit(functools.partial(_count_finished, str(status)), robust=True)


@_logged
def _count_finished(status: str) -> None:
    JOBS_FINISHED.labels(status).inc()


@_logged
def job_duration(seconds: float) -> None:
    _job_duration().observe(seconds)


@_logged
def stage_durations(record: dict[str, dict]) -> None:
    """Observes each stage of a document's stage record (``pipelines.runner``: ``duration_ms`` per stage)."""
    for stage, entry in record.items():
        if isinstance(entry, dict) and entry.get("duration_ms") is not None:
            STAGE_DURATION.labels(stage).observe(entry["duration_ms"] / 1000)


@_logged
def stage_duration(stage: str, seconds: float) -> None:
    STAGE_DURATION.labels(stage).observe(seconds)


@_logged
def webhook_deliveries(results: Iterable[str]) -> None:
    """Counts recorded delivery attempts by result (``succeeded``, ``retrying``, ``failed``, ``disabled``, ``lost``)."""
    counts: dict[str, int] = {}
    for result in results:
        counts[result] = counts.get(result, 0) + 1
    for result, count in counts.items():
        WEBHOOK_DELIVERIES.labels(result).inc(count)


def process_id(pid: int | None = None) -> str:
    """How this process's files are named (settings: host and pid)."""
    return f"{settings.METRICS_PROCESS_PREFIX}-{pid or os.getpid()}"


@_logged
def process_exiting() -> None:
    """A process that wrote metrics ends: prometheus_client's bookkeeping (drops its files of live
    gauges, if any; its counters' and histograms' files stay, or the sums would go backwards)."""
    multiprocess.mark_process_dead(process_id(), str(settings.PROMETHEUS_MULTIPROC_DIR))


# --- Read at scrape time ----------------------------------------------------------------------------


class PipelineCollector(Collector):
    """Gauges read when ``/metrics`` is scraped: RQ queue lengths, RQ workers alive, the oldest queued
    job's wait. One Redis round trip and one small query (three index probes). A dependency that
    does not answer leaves its gauges out of that scrape (``absent()`` alerts see it) and is logged."""

    def collect(self):
        yield from self._redis_gauges()
        yield from self._database_gauges()

    def _redis_gauges(self):
        from redis.exceptions import RedisError
        from rq import Queue, Worker

        from pipeline_project.lib.redis import get_redis

        redis = get_redis()
        try:
            with redis.pipeline(transaction=False) as pipe:
                for name in settings.RQ_QUEUE_NAMES:
                    pipe.llen(f"{Queue.redis_queue_namespace_prefix}{name}")
                lengths = pipe.execute()
            workers = Worker.count(connection=redis)
        except RedisError:
            logger.warning("metrics: Redis did not answer; queue and worker gauges left out", exc_info=True)
            return
        depth = GaugeMetricFamily("pipeline_queue_depth", "Jobs waiting in each RQ queue.", labels=["queue"])
        for name, length in zip(settings.RQ_QUEUE_NAMES, lengths, strict=True):
            depth.add_metric([name], length)
        yield depth
        yield GaugeMetricFamily("pipeline_workers", "RQ workers registered in Redis.", value=workers)

    def _database_gauges(self):
        from django.db import DatabaseError

        from jobs.selectors import oldest_queued_age

        try:
            age = oldest_queued_age()
        except DatabaseError:
            logger.warning("metrics: the database did not answer; oldest queued job left out", exc_info=True)
            return
        yield GaugeMetricFamily(
            "pipeline_oldest_queued_seconds",
            "Seconds the oldest queued job has waited since it was created (0: none waits).",
            value=age or 0.0,
        )


# django-rq times its own stats view with this summary, created in every process that imports its admin;
# that view is not served here, and the name fails ``promtool check metrics`` (a summary named ``_total``).
LEFT_OUT = ("rq_request_processing_seconds_total",)


class _FilesCollector(Collector):
    """The sums of every process's files (``MultiProcessCollector``), less ``LEFT_OUT``."""

    def __init__(self, path: str):
        self.files = multiprocess.MultiProcessCollector(None, path=path)

    def collect(self):
        return (family for family in self.files.collect() if family.name not in LEFT_OUT)


def registry() -> CollectorRegistry:
    """What ``/metrics`` serves: the sums of every process's files, and the gauges read now."""
    collected = CollectorRegistry()
    collected.register(_FilesCollector(str(settings.PROMETHEUS_MULTIPROC_DIR)))
    collected.register(PipelineCollector())
    return collected


def _authorized(request) -> bool:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), settings.METRICS_TOKEN.encode())


@never_cache
@require_safe
def metrics_view(request):
    """``GET /metrics`` in Prometheus's text format. With ``METRICS_TOKEN`` set, only for
    ``Authorization: Bearer <METRICS_TOKEN>`` (401 otherwise); unset, open: restrict it at the proxy."""
    if settings.METRICS_TOKEN and not _authorized(request):
        body = error_body("not_authenticated", "Send Authorization: Bearer <METRICS_TOKEN>.")
        return JsonResponse(body, status=401, headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    return HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)
