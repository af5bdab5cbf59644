"""RQ entry points: thin, they call the delivery code."""

import logging

from django.db import close_old_connections

logger = logging.getLogger(__name__)


def deliver_due() -> int:
    """Delivers one batch of what is due (a kick, ``webhooks.queueing``); returns how many it claimed."""
    from webhooks.delivery import deliver_due as deliver_batch
    from webhooks.queueing import BATCH

    close_old_connections()
    try:
        return deliver_batch(limit=BATCH)
    finally:
        close_old_connections()


def deliver(delivery_id: str) -> str | None:
    """One attempt of one delivery if it is due (tools; RQ jobs enqueued before batches existed)."""
    from webhooks.delivery import deliver as deliver_one

    close_old_connections()
    try:
        return deliver_one(delivery_id)
    finally:
        close_old_connections()


def recover_deliveries() -> int:
    """Scheduled every few seconds (pipeline_project/cron.py): kicks workers for deliveries left due
    too long. Logs a line only when it kicked some."""
    from webhooks.recovery import kick_overdue_deliveries

    close_old_connections()
    try:
        kicks = kick_overdue_deliveries()
    finally:
        close_old_connections()
    if kicks:
        logger.info("webhook delivery recovery: %d delivery batches overdue (their kick lost), workers kicked", kicks)
    return kicks


def prune_deliveries() -> int:
    """Scheduled daily (pipeline_project/cron.py): deletes finished deliveries older than WEBHOOK_DELIVERY_RETENTION."""
    from django.conf import settings

    from webhooks.services import deliveries_prune

    close_old_connections()
    try:
        count = deliveries_prune(older_than=settings.WEBHOOK_DELIVERY_RETENTION, dry_run=False, batch_size=1000)
    finally:
        close_old_connections()
    if count:
        logger.info("%d finished webhook deliveries older than %d days pruned", count,
                    settings.WEBHOOK_DELIVERY_RETENTION)  # fmt: skip
    return count
