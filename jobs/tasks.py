"""RQ entry points: thin, they take ids and call the engine. The periodic ones log a line only
when they did something."""

import logging

from django.db import close_old_connections

from jobs.engine import job_process
from jobs.engine import job_stopped as finish_stopped
from pipeline_project.lib import logs

logger = logging.getLogger(__name__)


def run_job(job_id: str) -> str | None:
    close_old_connections()
    try:
        with logs.bound(logs.job_id, job_id):  # our worker class binds it already; stock RQ workers do not
            return job_process(job_id)
    finally:
        close_old_connections()


def job_stopped(job, connection, *args, **kwargs) -> None:
    """RQ ``on_stopped`` callback: the work horse was killed on purpose (a cancellation)."""
    close_old_connections()
    try:
        with logs.bound(logs.job_id, job.id):
            finish_stopped(job.id)
    finally:
        close_old_connections()


def recover_jobs() -> dict[str, int]:
    """Scheduled every few seconds (pipeline_project/cron.py): requeue jobs of dead workers, re-enqueue lost ones."""
    from jobs.recovery import recover_jobs as recover

    close_old_connections()
    try:
        counts = recover()
    finally:
        close_old_connections()
    if any(counts.values()):
        dead_workers = counts["requeued"] or counts["failed"] or counts["cancelled"]
        logger.log(
            logging.WARNING if dead_workers else logging.INFO,
            "job recovery: %(requeued)d requeued, %(failed)d failed (worker lost), %(cancelled)d cancelled "
            "(their workers stopped), %(reenqueued)d re-enqueued (missing from Redis)",
            counts,
            extra={"recovered": counts},
        )
    return counts


def expire_results() -> int:
    """Scheduled hourly (pipeline_project/cron.py)."""
    from jobs.services import job_results_expire

    close_old_connections()
    try:
        count = job_results_expire()
    finally:
        close_old_connections()
    if count:
        logger.info("%d expired results deleted", count)
    return count


def cleanup_uploads() -> dict[str, int]:
    """Scheduled daily (pipeline_project/cron.py): ``manage.py cleanup_uploads``."""
    from dataclasses import asdict

    from jobs.services import job_uploads_delete

    close_old_connections()
    try:
        outcome = asdict(job_uploads_delete())
    finally:
        close_old_connections()
    if any(outcome.values()):
        logger.info(
            "uploads cleanup: %(files)d stored input files of %(jobs)d jobs past UPLOAD_RETENTION and "
            "%(orphans)d orphan files deleted",
            outcome,
        )
    return outcome
