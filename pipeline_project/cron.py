"""Everything periodic, for ``manage.py rqcron pipeline_project.cron`` (the scheduler process of
``make run`` and compose)."""

from rq import cron

from accounts.tasks import expire_api_keys
from audit.tasks import prune_logs, write_queued_records
from jobs.tasks import cleanup_uploads, expire_results, recover_jobs
from webhooks.tasks import prune_deliveries, recover_deliveries

cron.register(recover_jobs, "high", interval=10, job_timeout=300, name="recover_jobs")
cron.register(recover_deliveries, "high", interval=10, job_timeout=300, name="recover_webhook_deliveries")
cron.register(write_queued_records, "high", interval=10, job_timeout=300, name="write_queued_audit_records")
cron.register(expire_results, "low", interval=3600, job_timeout=3600, name="expire_results")
cron.register(expire_api_keys, "low", interval=300, job_timeout=300, name="expire_api_keys")
cron.register(prune_deliveries, "low", interval=86400, job_timeout=3600, name="prune_webhook_deliveries")
# Stored inputs past UPLOAD_RETENTION and orphan uploads: daily (manage.py cleanup_uploads).
cron.register(cleanup_uploads, "low", interval=86400, job_timeout=3600, name="cleanup_uploads")
cron.register(prune_logs, "low", interval=86400, job_timeout=3600, name="prune_audit_logs")
