"""The transactional outbox: announced events (``pipeline_project.lib.events``) become delivery
rows in the transaction of the change that caused them, one per receiver (each subscription of
the organization that wants the event type, and the URL the object asked to be told at: a job's
own ``webhook_url``, signed with the organization's default secret). After commit, workers are
kicked on the ``webhooks`` queue to deliver what is due (``webhooks/delivery.py``); if that kick
is lost (a process dying between commit and kick, Redis down or flushed), the recovery cron
kicks them for the rows still due.

Cost: one read of the organization's active subscriptions per announcement; with receivers, one
render of each event's object and one insert of all the rows.
"""

from pipeline_project.lib.events import Event
from webhooks import queueing, signing
from webhooks.events import EVENT_TYPES
from webhooks.models import WebhookDelivery, WebhookSubscription


def payload(event: Event) -> dict:
    """The body of an event's messages: ``{"type", "timestamp", "data"}``."""
    return {
        "type": event.type,
        "timestamp": event.occurred_at.isoformat().replace("+00:00", "Z"),
        "data": event.data,
    }


class WebhookOutbox:
    def plan(self, events: list[Event]) -> list[tuple[Event, object, str]] | None:
        """``(event, subscription id or None, url)`` for every message to send."""
        events = [event for event in events if event.type in EVENT_TYPES]  # not the audit trail's system actions
        if not events:
            return None
        subscriptions = list(
            WebhookSubscription.objects.filter(organization_id=events[0].organization_id, is_active=True)
            .order_by("created_at")
            .values_list("pk", "url", "events")
        )
        messages = []
        for event in events:
            for subscription_id, url, wanted in subscriptions:
                if "*" in wanted or event.type in wanted:
                    messages.append((event, subscription_id, url))
            if event.callback_url:
                messages.append((event, None, event.callback_url))
        return messages or None

    def record(self, plan: list[tuple[Event, object, str]], events: list[Event]) -> None:
        bodies = {}  # one payload per event, whatever its number of receivers
        deliveries = []
        for event, subscription_id, url in plan:
            if event not in bodies:
                bodies[event] = payload(event)
            deliveries.append(
                WebhookDelivery(
                    organization_id=event.organization_id,
                    subscription_id=subscription_id,
                    url=url,
                    event_type=event.type,
                    payload=bodies[event],
                    message_id=signing.new_message_id(),
                    next_attempt_at=event.occurred_at,
                )
            )
        WebhookDelivery.objects.bulk_create(deliveries)
        queueing.kick_on_commit(queueing.kicks_for(len(deliveries)))


outbox = WebhookOutbox()
