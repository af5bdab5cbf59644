"""Periodic jobs, for ``manage.py rqcron jobs.cron`` (the scheduler process of make run and compose)."""

from rq import cron

from jobs.tasks import expire_results, recover_jobs

cron.register(recover_jobs, "high", interval=10, job_timeout=300, name="recover_jobs")
cron.register(expire_results, "low", interval=3600, job_timeout=3600, name="expire_results")
