"""No job is ever lost: crashed workers and forgotten queue entries are repaired here.

``reap_stale_jobs`` finds ``processing`` (or ``cancelling``) jobs whose heartbeat stopped
(their worker died: SIGKILL, OOM, a lost host) and requeues them until ``max_attempts``,
then fails them with ``worker_lost``. ``reconcile_queued_jobs`` re-enqueues ``queued`` jobs
Redis no longer holds (Redis restarted or flushed, an enqueue lost to an outage) or holds
only as finished or failed. Both are idempotent; they run every few seconds from the RQ cron
scheduler (``pipeline_project/cron.py``) and on demand with ``manage.py reap_stale_jobs``.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone
from redis.exceptions import RedisError

from jobs import queueing
from jobs.models import QUEUE_FOR_PRIORITY, Job, JobStatus
from jobs.services import job_worker_lost
from pipeline_project.lib.redis import rq_job_alive

logger = logging.getLogger(__name__)

RECONCILE_GRACE = timedelta(seconds=30)  # leave just-queued jobs to their after-commit enqueue
_COUNTED_AS = {JobStatus.QUEUED: "requeued", JobStatus.FAILED: "failed", JobStatus.CANCELLED: "cancelled"}


def stale_jobs():
    """Processing or cancelling jobs whose heartbeat is older than ``JOB_HEARTBEAT_TIMEOUT``."""
    stale_before = timezone.now() - timedelta(seconds=settings.JOB_HEARTBEAT_TIMEOUT)
    return Job.objects.filter(status__in=(JobStatus.PROCESSING, JobStatus.CANCELLING), heartbeat_at__lt=stale_before)


def reap_stale_jobs(*, dry_run: bool = False) -> dict[str, int]:
    """Hands each stale job to the reaper's verdict (``job_worker_lost``); returns how many were
    requeued, failed and cancelled (with ``dry_run``: how many would be, changing nothing)."""
    if dry_run:
        verdicts = stale_jobs().aggregate(
            cancelled=Count("pk", filter=Q(status=JobStatus.CANCELLING)),
            failed=Count("pk", filter=Q(status=JobStatus.PROCESSING, attempts__gte=F("max_attempts"))),
            requeued=Count("pk", filter=Q(status=JobStatus.PROCESSING, attempts__lt=F("max_attempts"))),
        )
        return {key: verdicts[key] for key in ("requeued", "failed", "cancelled")}
    counts = {"requeued": 0, "failed": 0, "cancelled": 0}
    for job_id in stale_jobs().values_list("pk", flat=True):
        with transaction.atomic():
            job = stale_jobs().select_for_update(skip_locked=True).filter(pk=job_id).first()
            if job is None:
                continue  # finished, or being handled by another reaper, meanwhile
            status = job_worker_lost(job=job, message=f"worker {job.locked_by or '?'} stopped sending heartbeats")
            counts[_COUNTED_AS[status]] += 1
    return counts


def reconcile_queued_jobs(*, dry_run: bool = False) -> int:
    """Re-enqueues queued jobs that have no live RQ job; returns how many (with ``dry_run``: how
    many it would)."""
    queued = Job.objects.filter(status=JobStatus.QUEUED, updated_at__lt=timezone.now() - RECONCILE_GRACE)
    count = 0
    for job_id, priority in queued.values_list("pk", "priority").iterator():
        try:
            alive = rq_job_alive(str(job_id))
        except RedisError:
            logger.warning("reconciliation stopped: Redis unavailable", exc_info=True)
            break
        if not alive:
            if not dry_run:
                queueing.requeue(job_id, QUEUE_FOR_PRIORITY[priority])
            count += 1
    return count


def recover_jobs(*, dry_run: bool = False) -> dict[str, int]:
    return {**reap_stale_jobs(dry_run=dry_run), "reenqueued": reconcile_queued_jobs(dry_run=dry_run)}
