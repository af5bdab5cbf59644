from datetime import timedelta

from django.core.management.base import CommandError
from django.utils import timezone

from pipeline_project.lib.commands import BatchCommand
from webhooks.services import deliveries_prunable, deliveries_prune


class Command(BatchCommand):
    help = (
        "Deletes finished webhook deliveries (succeeded or failed; never pending or retrying ones) created more "
        "than DAYS ago, audited per organization (webhooks.prune_deliveries). Idempotent and safe to run twice at "
        "once; also daily from the scheduler with WEBHOOK_DELIVERY_RETENTION."
    )
    batch_size, unit = 1000, "deliveries"

    def add_arguments(self, parser):
        parser.add_argument("--older-than", type=int, required=True, metavar="DAYS")
        super().add_arguments(parser)

    def check_options(self, *, older_than, **options) -> None:
        if older_than < 1:
            raise CommandError("--older-than must be at least 1 day.")

    def run(self, *, dry_run, batch_size, progress, older_than, **options) -> int:
        return deliveries_prune(older_than=older_than, dry_run=dry_run, batch_size=batch_size, progress=progress)

    def pending(self, *, older_than, **options) -> int:
        return deliveries_prunable(cutoff=timezone.now() - timedelta(days=older_than)).count()

    def would(self, count, *, older_than, **options) -> str:
        return f"{count} finished webhook deliveries older than {older_than} days would be deleted"

    def done(self, count, *, older_than, **options) -> str:
        return f"{count} finished webhook deliveries older than {older_than} days deleted."
