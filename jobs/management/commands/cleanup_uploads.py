from jobs.services import UploadsCleanup, job_uploads_delete, job_uploads_expired
from pipeline_project.lib.commands import BatchCommand


class Command(BatchCommand):
    help = (
        "Deletes the stored input files of jobs ended more than UPLOAD_RETENTION ago (failed, cancelled, or "
        "completed with their result expired), except those a live retry shares, and the stored uploads no job "
        "refers to (older than a day). Audited per organization (jobs.uploads_deleted) and for orphans "
        "(jobs.orphan_uploads_deleted). Such jobs can no longer be retried (409 inputs_deleted). Idempotent and "
        "safe to run twice at once; also daily from the scheduler."
    )
    batch_size, unit = 200, "jobs"
    outcome: UploadsCleanup

    def run(self, *, dry_run, batch_size, progress, **options) -> int:
        self.outcome = job_uploads_delete(dry_run=dry_run, batch_size=batch_size, progress=progress)
        return self.outcome.jobs

    def pending(self, **options) -> int:
        return job_uploads_expired().count()

    def would(self, count, **options) -> str:
        return f"{self._summary()} would be deleted"

    def done(self, count, **options) -> str:
        return f"{self._summary()} deleted."

    def _summary(self) -> str:
        outcome = self.outcome
        return (
            f"{_plural(outcome.files, 'stored input file')} of {_plural(outcome.jobs, 'job')} past UPLOAD_RETENTION "
            f"and {_plural(outcome.orphans, 'orphan file')}"
        )


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
