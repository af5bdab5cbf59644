"""RQ entry points: thin, they call the services. The periodic ones log a line only when they did something."""

import logging

from django.db import close_old_connections

logger = logging.getLogger(__name__)


def expire_api_keys() -> int:
    """Scheduled every 5 minutes (pipeline_project/cron.py): revokes keys past their expires_at."""
    from accounts.services import api_keys_expire

    close_old_connections()
    try:
        count = api_keys_expire(dry_run=False, batch_size=500)
    finally:
        close_old_connections()
    if count:
        logger.info("%d expired API keys revoked", count)
    return count
