"""Everything periodic, for ``manage.py rqcron pipeline_project.cron`` (the scheduler process of
``make run`` and compose). Each job logs a line when it acts; RQ's lines about them (enqueued,
started, done: a dozen every 10 s) are left out (``pipeline_project.lib.logs.QuietHousekeeping``)."""

import logging

from rq import cron

from accounts.tasks import expire_api_keys
from audit.tasks import prune_logs, write_queued_records
from jobs.tasks import cleanup_uploads, expire_results, recover_jobs
from pipeline_project.lib import logs
from webhooks.tasks import prune_deliveries, recover_deliveries


def every(seconds: int, func, queue: str, *, name: str, timeout: int = 300) -> None:
    cron.register(func, queue, interval=seconds, job_timeout=timeout, name=name, meta={logs.HOUSEKEEPING: True})


every(10, recover_jobs, "high", name="recover_jobs")
every(10, recover_deliveries, "high", name="recover_webhook_deliveries")
every(10, write_queued_records, "high", name="write_queued_audit_records")
every(300, expire_api_keys, "low", name="expire_api_keys")
every(3600, expire_results, "low", name="expire_results", timeout=3600)
every(86400, prune_deliveries, "low", name="prune_webhook_deliveries", timeout=3600)
# Stored inputs past UPLOAD_RETENTION and orphan uploads (manage.py cleanup_uploads).
every(86400, cleanup_uploads, "low", name="cleanup_uploads", timeout=3600)
every(86400, prune_logs, "low", name="prune_audit_logs", timeout=3600)

logging.getLogger("rq.cron").addFilter(logs.QuietHousekeeping())
