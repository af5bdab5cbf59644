"""What jobs announce (``pipeline_project.lib.events``): ``job.created`` and every status change a
subscriber can act on, each carrying the job as ``GET /jobs/{id}`` shows it after the change; and
the system actions the audit trail records (``job.worker_lost``, ``job.results_expired``,
``job.uploads_deleted``, ``job.orphan_uploads_deleted``).
A job's own ``webhook_url`` is told of its events. Called by ``jobs.services`` inside the
transaction of the change; the jobs are read (and rendered) only if someone listens."""

from collections.abc import Iterable

from jobs.models import Job, JobStatus
from pipeline_project.lib.events import Announcement, Event, announce

EVENT_FOR_STATUS = {
    JobStatus.QUEUED: "job.queued",
    JobStatus.PROCESSING: "job.started",
    JobStatus.COMPLETED: "job.completed",
    JobStatus.FAILED: "job.failed",
    JobStatus.CANCELLED: "job.cancelled",
}  # draft and cancelling announce nothing


def status_changed(job: Job, status: str) -> None:
    """Announces that ``job`` became ``status`` (nothing for a status without an event)."""
    if status in EVENT_FOR_STATUS:
        announce(job_events([(job, EVENT_FOR_STATUS[status])]))


def worker_lost(job: Job, *, message: str) -> None:
    """The reaper's verdict on a job whose worker vanished (a system action, for the audit trail)."""
    announce([Event(type="job.worker_lost", organization_id=job.organization_id, resource_id=str(job.pk),
                    details={"message": message, "attempts": job.attempts, "status": job.status})])  # fmt: skip


def results_expired(job_ids_by_organization: dict) -> None:
    """Results deleted past their retention (a system action, for the audit trail)."""
    announce(
        Event(
            type="job.results_expired",
            organization_id=organization_id,
            details={"count": len(job_ids), "jobs": [str(job_id) for job_id in job_ids[:100]]},
        )  # fmt: skip
        for organization_id, job_ids in job_ids_by_organization.items()
    )


def uploads_deleted(job_ids_by_organization: dict, *, files: dict) -> None:
    """Jobs' stored inputs deleted past UPLOAD_RETENTION, with how many ``files`` each
    organization's jobs let go of (a system action, for the audit trail)."""
    announce(
        Event(
            type="job.uploads_deleted",
            organization_id=organization_id,
            details={
                "count": len(job_ids),
                "jobs": [str(job_id) for job_id in job_ids[:100]],
                "files": files[organization_id],
            },
        )
        for organization_id, job_ids in job_ids_by_organization.items()
    )


def orphan_uploads_deleted(names: list[str]) -> None:
    """Stored uploads no job refers to, deleted (a system action of no organization)."""
    announce([Event(type="job.orphan_uploads_deleted", organization_id=None,
                    details={"count": len(names), "files": names[:100]})])  # fmt: skip


def created(jobs: Iterable[Job]) -> Announcement:
    """``job.created`` for each new job, then ``job.queued`` for the queued ones: what to record
    once they are written (``Announcement``: falsy if nobody listens)."""
    events = []
    for job in jobs:
        events.append((job, "job.created"))
        if job.status in EVENT_FOR_STATUS:
            events.append((job, EVENT_FOR_STATUS[job.status]))
    return Announcement(job_events(events))


def job_events(pairs: list[tuple[Job, str]]) -> list[Event]:
    render = _Renderer({job.pk for job, _ in pairs})
    return [
        Event(
            type=type_,
            organization_id=job.organization_id,
            render=lambda pk=job.pk: render(pk),
            callback_url=job.webhook_url,
        )  # fmt: skip
        for job, type_ in pairs
    ]


class _Renderer:
    """Renders the jobs of one change, all read in one go the first time one is needed."""

    def __init__(self, job_ids: set):
        self.job_ids = job_ids
        self.rendered: dict | None = None

    def __call__(self, job_id) -> dict:
        if self.rendered is None:
            from jobs.api.serializers import JobDetailSerializer  # the API's representation
            from jobs.selectors import jobs_as_announced

            self.rendered = {job.pk: JobDetailSerializer(job).data for job in jobs_as_announced(self.job_ids)}
        return self.rendered[job_id]
