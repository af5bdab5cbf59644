"""System actions announced through ``pipeline_project.lib.events`` (the apps acting do not import
``audit``) are recorded with actor ``system``, in the transaction of the action."""

from audit.models import ActorKind
from audit.services import audit_record
from pipeline_project.lib.events import Event

# event type -> (action, resource type)
SYSTEM_ACTIONS = {
    "job.worker_lost": ("jobs.worker_lost", "job"),
    "job.results_expired": ("jobs.results_expired", "job_result"),
    "job.uploads_deleted": ("jobs.uploads_deleted", "job_file"),
    "job.orphan_uploads_deleted": ("jobs.orphan_uploads_deleted", "stored_file"),
    "webhook.disabled": ("webhooks.disabled", "webhook"),
    "api_key.expired": ("api_keys.expire", "api_key"),
    "webhook.deliveries_pruned": ("webhooks.prune_deliveries", "webhook_delivery"),
}


class AuditListener:
    def plan(self, events: list[Event]) -> list[Event] | None:
        return [event for event in events if event.type in SYSTEM_ACTIONS] or None

    def record(self, plan: list[Event], events: list[Event]) -> None:
        for event in plan:
            action, resource_type = SYSTEM_ACTIONS[event.type]
            audit_record(action=action, actor_kind=ActorKind.SYSTEM, username="system",
                         organization_id=event.organization_id, resource_type=resource_type,
                         resource_id=event.resource_id, request_details=event.details,
                         timestamp=event.occurred_at)  # fmt: skip


listener = AuditListener()
