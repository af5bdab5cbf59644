"""RQ entry points: thin, they take ids and call the engine."""

from django.db import close_old_connections

from jobs.engine import job_process
from jobs.engine import job_stopped as finish_stopped


def run_job(job_id: str) -> str | None:
    close_old_connections()
    try:
        return job_process(job_id)
    finally:
        close_old_connections()


def job_stopped(job, connection, *args, **kwargs) -> None:
    """RQ ``on_stopped`` callback: the work horse was killed on purpose (a cancellation)."""
    close_old_connections()
    try:
        finish_stopped(job.id)
    finally:
        close_old_connections()


def recover_jobs() -> dict[str, int]:
    """Scheduled every few seconds (pipeline_project/cron.py): requeue jobs of dead workers, re-enqueue lost ones."""
    from jobs.recovery import recover_jobs as recover

    close_old_connections()
    try:
        return recover()
    finally:
        close_old_connections()


def expire_results() -> int:
    """Scheduled hourly (pipeline_project/cron.py)."""
    from jobs.services import job_results_expire

    close_old_connections()
    try:
        return job_results_expire()
    finally:
        close_old_connections()
