"""RQ entry points: thin."""

from django.db import close_old_connections


def write_queued_records() -> int:
    """Writes the API calls' audit records queued in Redis: enqueued by requests (at most once a
    second) and scheduled every few seconds (pipeline_project/cron.py)."""
    from audit.services import audit_write_queued

    close_old_connections()
    try:
        return audit_write_queued()
    finally:
        close_old_connections()
