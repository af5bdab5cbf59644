from django.core.management.base import BaseCommand, CommandError

from jobs.services import job_results_expirable, job_results_expire
from pipeline_project.lib.progress import progress_bar


class Command(BaseCommand):
    help = (
        "Deletes job results past their expires_at (RESULT_RETENTION), with their stored texts, audited per "
        "organization (jobs.results_expired). Idempotent and safe to run twice at once; also hourly from the scheduler."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Change nothing; say how many would go.")
        parser.add_argument("--batch-size", type=int, default=500, help="Results per transaction (default 500).")

    def handle(self, *args, dry_run, batch_size, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        if dry_run:
            count = job_results_expire(dry_run=True, batch_size=batch_size)
            self.stdout.write(f"Dry run: {count} expired results would be deleted; nothing changed.")
            return
        total = job_results_expirable().count  # counted only when a bar is drawn
        with progress_bar(self.stdout, total=total, description="Deleting") as advance:
            count = job_results_expire(batch_size=batch_size, progress=advance)
        self.stdout.write(f"{count} expired results deleted")
