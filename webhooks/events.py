"""The event types a subscription may ask for."""

EVENT_TYPES = (
    "job.created",
    "job.queued",
    "job.started",
    "job.completed",
    "job.failed",
    "job.cancelled",
    "pipeline.created",
    "pipeline.updated",
    "pipeline.deleted",
    "webhook.test",
)
ALL = "*"
