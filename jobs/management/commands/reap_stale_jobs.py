from django.core.management.base import BaseCommand

from jobs.recovery import recover_jobs


class Command(BaseCommand):
    help = (
        "Requeues (or fails, or finishes cancelling) jobs whose worker died, and re-enqueues queued jobs Redis lost; "
        "each verdict is audited (job.worker_lost). Idempotent and safe to run twice at once; also every 10 s from "
        "the scheduler."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Change nothing; say what would be done.")

    def handle(self, *args, dry_run, **options):
        counts = recover_jobs(dry_run=dry_run)
        summary = (
            f"{counts['requeued']} requeued, {counts['failed']} failed (worker lost), "
            f"{counts['cancelled']} cancelled, {counts['reenqueued']} re-enqueued"
        )
        self.stdout.write(f"Dry run: would be {summary}; nothing changed." if dry_run else summary)
