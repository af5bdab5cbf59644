"""RQ entry points: thin."""

import logging

from django.db import close_old_connections

logger = logging.getLogger(__name__)


def write_queued_records() -> int:
    """Writes the API calls' audit records queued in Redis: enqueued by requests (at most once a
    second) and scheduled every few seconds (pipeline_project/cron.py)."""
    from audit.services import audit_write_queued

    close_old_connections()
    try:
        return audit_write_queued()
    finally:
        close_old_connections()


def prune_logs() -> int:
    """Scheduled daily (pipeline_project/cron.py): deletes audit records older than
    AUDIT_LOG_RETENTION days (0: kept forever), as ``manage.py prune_audit_logs`` does."""
    from django.conf import settings

    from audit.services import audit_logs_prune

    if not settings.AUDIT_LOG_RETENTION:
        return 0
    close_old_connections()
    try:
        count = audit_logs_prune(older_than=settings.AUDIT_LOG_RETENTION)
    finally:
        close_old_connections()
    if count:
        logger.info("%d audit records older than %d days pruned", count, settings.AUDIT_LOG_RETENTION)
    return count
