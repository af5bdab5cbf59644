from jobs.services import job_results_expirable, job_results_expire
from pipeline_project.lib.commands import BatchCommand


class Command(BatchCommand):
    help = (
        "Deletes job results past their expires_at (RESULT_RETENTION), with their stored texts, audited per "
        "organization (jobs.results_expired). Idempotent and safe to run twice at once; also hourly from the scheduler."
    )
    unit = "results"

    def run(self, *, dry_run, batch_size, progress, **options) -> int:
        return job_results_expire(dry_run=dry_run, batch_size=batch_size, progress=progress)

    def pending(self, **options) -> int:
        return job_results_expirable().count()

    def would(self, count, **options) -> str:
        return f"{count} expired results would be deleted"

    def done(self, count, **options) -> str:
        return f"{count} expired results deleted"
