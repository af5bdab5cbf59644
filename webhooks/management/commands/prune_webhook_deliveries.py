from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from pipeline_project.lib.progress import progress_bar
from webhooks.services import deliveries_prunable, deliveries_prune


class Command(BaseCommand):
    help = (
        "Deletes finished webhook deliveries (succeeded or failed; never pending or retrying ones) created more "
        "than DAYS ago, audited per organization (webhooks.prune_deliveries). Idempotent and safe to run twice at "
        "once; also daily from the scheduler with WEBHOOK_DELIVERY_RETENTION."
    )

    def add_arguments(self, parser):
        parser.add_argument("--older-than", type=int, required=True, metavar="DAYS")
        parser.add_argument("--dry-run", action="store_true", help="Change nothing; say how many would go.")
        parser.add_argument("--batch-size", type=int, default=1000, help="Deliveries per transaction (default 1000).")

    def handle(self, *args, older_than, dry_run, batch_size, **options):
        if older_than < 1:
            raise CommandError("--older-than must be at least 1 day.")
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        if dry_run:
            count = deliveries_prune(older_than=older_than, dry_run=True, batch_size=batch_size)
            self.stdout.write(
                f"Dry run: {count} finished webhook deliveries older than {older_than} days would be deleted; "
                "nothing changed."
            )
            return

        def total() -> int:
            return deliveries_prunable(cutoff=timezone.now() - timedelta(days=older_than)).count()

        with progress_bar(self.stdout, total=total, description="Deleting") as advance:
            count = deliveries_prune(older_than=older_than, dry_run=False, batch_size=batch_size, progress=advance)
        self.stdout.write(f"{count} finished webhook deliveries older than {older_than} days deleted.")
