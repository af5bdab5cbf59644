"""RQ entry points: thin, they take ids and call the engine."""

from django.db import close_old_connections

from jobs.engine import job_process


def run_job(job_id: str) -> str | None:
    close_old_connections()
    try:
        return job_process(job_id)
    finally:
        close_old_connections()
