from django.core.management.base import BaseCommand

from jobs.recovery import recover_jobs


class Command(BaseCommand):
    help = "Requeue (or fail) jobs whose worker died, and re-enqueue queued jobs Redis lost. Idempotent."

    def handle(self, *args, **options):
        counts = recover_jobs()
        self.stdout.write(
            f"{counts['requeued']} requeued, {counts['failed']} failed (worker lost), "
            f"{counts['cancelled']} cancelled, {counts['reenqueued']} re-enqueued"
        )
