"""RQ entry points: thin, they take ids and call the delivery code."""

from django.db import close_old_connections


def deliver(delivery_id: str) -> str | None:
    """One attempt of a delivery (enqueued by ``webhooks.queueing``)."""
    from webhooks.delivery import deliver as deliver_once

    close_old_connections()
    try:
        return deliver_once(delivery_id)
    finally:
        close_old_connections()


def recover_deliveries() -> int:
    """Scheduled every few seconds (pipeline_project/cron.py): re-enqueues due deliveries Redis lost."""
    from webhooks.recovery import reenqueue_due_deliveries

    close_old_connections()
    try:
        return reenqueue_due_deliveries()
    finally:
        close_old_connections()
